package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/progress"
	"github.com/lading-build/lading/remotecache"
	"github.com/lading-build/lading/runtime"
	"github.com/lading-build/lading/store"
)

// Request is one build: the context and recipe, how to build, and where
// the image goes besides the store. The zero value of every field but
// ContextDir (or ContextArchive) is a usable default.
type Request struct {
	// ContextDir is the build context directory.
	ContextDir string
	// ContextArchive, when set, is read instead of ContextDir, as
	// `docker build -` reads stdin: a tar archive (plain, gzip, bzip2, xz
	// or zstd) is the context, with the recipe inside it; anything else
	// is the recipe itself, with an empty context.
	ContextArchive io.Reader
	// RecipeFile is the recipe's path; "" looks for Recipe, Dockerfile
	// and Containerfile in the context, "-" reads Stdin. With
	// ContextArchive it is a path inside the archive.
	RecipeFile string
	// Recipe, when not nil, is the recipe text (RecipeFile then only names
	// it in error locations).
	Recipe []byte
	// Stdin is what RecipeFile "-" reads; nil means os.Stdin.
	Stdin io.Reader

	// Store is the open state directory; when nil, Build opens Root
	// ("" means store.DefaultRoot()).
	Store *store.Store
	Root  string
	// Snapshotter is "overlay" (the default; native copies where overlayfs
	// cannot be mounted) or "native".
	Snapshotter string

	// Tags name the image in the store (NAME[:TAG]); a registry output
	// pushes to each.
	Tags []string
	// Outputs are written after the image is saved and tagged, in order.
	Outputs []Output
	// CacheFrom and CacheTo are shared build caches to read and to write
	// (remotecache.ParseSpec: type=registry,ref=REF or type=local,src=DIR,
	// and mode=min|max for CacheTo).
	CacheFrom []string
	CacheTo   []string

	BuildArgs map[string]string
	// Target is the stage to build (name or index); "" is the last.
	Target string
	// Platform is the target platform os/arch[/variant]; "" is this
	// machine's. A comma-separated list builds every platform listed into
	// one OCI image index (see RunIndex); a docker output cannot hold it.
	Platform string
	// Settings say how steps run and how the cache is used. Build
	// replaces Remote.Progress: registry progress goes to the progress
	// view.
	Settings

	// Progress is the progress view (ProgressModes); "" means auto.
	// Nothing is shown when ProgressOutput is nil.
	Progress       string
	ProgressOutput io.Writer
	// LogLimit is how much output of each step the view shows: 0 means
	// the default (8 MiB), -1 no limit.
	LogLimit int64
}

// Limits are the resource limits of RUN steps.
type Limits = runtime.Limits

// Network modes of RUN steps.
const (
	NetworkDefault = runtime.NetworkDefault
	NetworkHost    = runtime.NetworkHost
	NetworkNone    = runtime.NetworkNone
)

// WriteJSONError writes err as the error event of --progress json.
func WriteJSONError(w io.Writer, err error) error { return progress.WriteError(w, err.Error()) }

// ProgressModes lists the values of Request.Progress.
var ProgressModes = progress.Modes

// Init must be the first call in the main function of a program that
// builds: when the program is re-executed as a container's init process,
// it runs that process and does not return.
func Init() { runtime.Init() }

// Build builds the image req describes, saves it in the store under every
// tag and writes it to every output. A failed step is a *StepError.
func Build(ctx context.Context, req Request) (res *Result, err error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	st, src, plans, err := req.open(ctx)
	if err != nil {
		return nil, err
	}
	defer src.cleanup()
	platform, err := parsePlatform(plans[0].Platform)
	if err != nil {
		return nil, err
	}
	sn, buildCache, err := OpenSnapshotter(st, req.Snapshotter)
	if err != nil {
		return nil, err
	}
	defer sn.Close()
	// Hold off lading prune from the first blob this build writes until
	// its names are tagged.
	release, err := st.Hold(ctx)
	if err != nil {
		return nil, err
	}
	defer release()

	rep, err := newReporter(req)
	if err != nil {
		return nil, err
	}
	defer func() {
		out := progress.Outcome{Err: err}
		if err == nil {
			out.Image, out.Digest = strings.Join(req.Tags, ", "), res.Digest.String()
		}
		progress.Finish(rep, out)
		var se *StepError
		if errors.As(err, &se) && req.ProgressOutput != nil && req.Progress != "quiet" && req.Progress != "json" {
			se.Tail = "" // the view printed the failed step's output already
		}
	}()
	remote := req.Remote
	remote.Progress = func(line string) { rep.Log("%s", line) }
	cacheFrom, cacheTo, err := openCaches(ctx, req, remote)
	if err != nil {
		return nil, err
	}
	settings := req.Settings
	settings.Remote = remote
	opts := Options{
		ContextDir: src.dir,
		RecipePath: src.path,
		Store:      st,
		Snapshots:  sn,
		Progress:   rep,
		Platform:   platform,
		Cache:      buildCache,
		CacheFrom:  cacheFrom,
		Settings:   settings,
		// Exported records need their layers written.
		ExportsCache: len(cacheTo) > 0,
	}
	if len(plans) > 1 {
		res, err = RunIndex(ctx, plans, opts)
	} else {
		res, err = Run(ctx, plans[0], opts)
	}
	if err != nil {
		return nil, err
	}
	if err := req.deliver(ctx, st, res, rep); err != nil {
		return nil, err
	}
	if !req.NoCache {
		if err := exportCache(ctx, st, buildCache, res, cacheTo); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// open opens the store, finds the context and recipe, and parses it once
// per target platform; the caller runs src.cleanup.
func (req Request) open(ctx context.Context) (*store.Store, *source, []*parser.Plan, error) {
	st, err := req.openStore()
	if err != nil {
		return nil, nil, nil, err
	}
	src, err := openSource(ctx, st, req)
	if err != nil {
		return nil, nil, nil, err
	}
	platforms, err := TargetPlatforms(req.Platform)
	if err != nil {
		src.cleanup()
		return nil, nil, nil, err
	}
	// One plan per target platform: the automatic platform ARGs, and so
	// what FROM and the steps expand to, depend on it.
	var plans []*parser.Plan
	for _, p := range platforms {
		plan, err := parser.Parse(bytes.NewReader(src.recipe), parser.Options{
			File: src.display, BuildArgs: req.BuildArgs, Target: req.Target, Platform: p,
		})
		if err != nil {
			src.cleanup()
			return nil, nil, nil, err
		}
		plans = append(plans, plan)
	}
	return st, src, plans, nil
}

func (req Request) openStore() (*store.Store, error) {
	if req.Store != nil {
		return req.Store, nil
	}
	return store.Open(req.Root)
}

// deliver names the image (or index) in the store and writes it to every
// output.
func (req Request) deliver(ctx context.Context, st *store.Store, res *Result, rep progress.Reporter) error {
	for _, t := range req.Tags {
		if err := st.Tag(t, res.Digest.String()); err != nil {
			return fmt.Errorf("tagging %s: %w", t, err)
		}
	}
	remote := req.Remote
	remote.Progress = func(line string) { rep.Log("%s", line) }
	for _, o := range req.Outputs {
		ex := o.exporter(st, req.Tags, remote)
		var err error
		if res.Index == nil {
			err = ex.Export(ctx, res.Image)
		} else if ix, ok := ex.(image.IndexExporter); ok {
			err = ix.ExportIndex(ctx, res.Index)
		} else {
			err = fmt.Errorf("type=%s holds one platform", o.Type)
		}
		if err != nil {
			return fmt.Errorf("writing %s output %s: %w", o.Type, o.Dest, err)
		}
		if o.Type != "registry" {
			rep.Log("wrote %s output: %s", o.Type, o.Dest)
		}
	}
	return nil
}

// check rejects a request before anything is read or written.
func (req Request) check() error {
	if (req.ContextDir == "") == (req.ContextArchive == nil) {
		return errors.New("a build needs a context directory or a context archive (and not both)")
	}
	for _, t := range req.Tags {
		if err := image.ValidateName(t); err != nil {
			return fmt.Errorf("tag: %w", err)
		}
	}
	switch req.Pull {
	case "", PullMissing, PullAlways, PullNever:
	default:
		return fmt.Errorf("pull policy must be missing, always or never, not %q", req.Pull)
	}
	platforms, err := TargetPlatforms(req.Platform)
	if err != nil {
		return err
	}
	for _, o := range req.Outputs {
		if err := o.check(); err != nil {
			return err
		}
		if o.Type == "docker" && len(platforms) > 1 {
			return fmt.Errorf("output type=docker: %w", image.ErrDockerIndex)
		}
		if o.Type == "registry" && len(req.Tags) == 0 {
			return errors.New("a registry output (--push) needs at least one tag to push to")
		}
	}
	return nil
}

// exporter returns the image exporter that writes o.
func (o Output) exporter(st *store.Store, names []string, remote image.RemoteOptions) image.Exporter {
	switch o.Type {
	case "docker":
		return image.NewDockerArchive(o.Dest, names)
	case "local":
		return image.NewLocalDir(o.Dest)
	case "registry":
		return image.NewRegistry(st, names, remote)
	default:
		return image.NewOCIArchive(o.Dest, names)
	}
}

func newReporter(req Request) (progress.Reporter, error) {
	if req.ProgressOutput == nil {
		return progress.Discard(), nil
	}
	mode := req.Progress
	if mode == "" {
		mode = "auto"
	}
	opts := progress.Options{NoColor: os.Getenv("NO_COLOR") != "", LogLimit: req.LogLimit}
	rep, err := progress.NewWithOptions(mode, req.ProgressOutput, opts)
	if err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	return rep, nil
}

// openCaches opens the shared caches of CacheFrom and CacheTo.
func openCaches(ctx context.Context, req Request, remote image.RemoteOptions) ([]remotecache.Source, []cacheExport, error) {
	var from []remotecache.Source
	for _, spec := range req.CacheFrom {
		sp, err := remotecache.ParseSpec(spec)
		if err != nil {
			return nil, nil, err
		}
		src, err := remotecache.OpenSource(ctx, sp, remote)
		if err != nil {
			return nil, nil, err
		}
		from = append(from, src)
	}
	var to []cacheExport
	for _, spec := range req.CacheTo {
		sp, err := remotecache.ParseSpec(spec)
		if err != nil {
			return nil, nil, err
		}
		sink, err := remotecache.OpenSink(sp, remote)
		if err != nil {
			return nil, nil, err
		}
		to = append(to, cacheExport{sink: sink, mode: sp.Mode})
	}
	return from, to, nil
}

func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{}, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("platform: %w", err)
	}
	return *p, nil
}

// stdin is what RecipeFile "-" reads.
func (req Request) stdin() io.Reader {
	if req.Stdin != nil {
		return req.Stdin
	}
	return os.Stdin
}
