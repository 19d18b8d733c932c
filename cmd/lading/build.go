package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/lading-build/lading/builder"
	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/progress"
	"github.com/lading-build/lading/remotecache"
	"github.com/lading-build/lading/runtime"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

type buildFlags struct {
	check         string
	file          string
	tags          []string
	buildArgs     []string
	target        string
	outputs       []string
	progress      string
	network       string
	allow         []string
	hostname      string
	snapshotter   string
	platform      string
	memory        string
	pidsLimit     int64
	cpus          float64
	jobs          int
	noCache       bool
	noCacheFilter []string
	explainCache  bool
	squash        bool
	contexts      []string
	secrets       []string
	ssh           []string
	pull          string
	push          bool
	remote        remoteFlags
	cacheFrom     []string
	cacheTo       []string
	securityOpts  []string
	logLimit      string
}

func newBuildCmd() *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "Build an image from a recipe",
		Long: `Build an image from a recipe (any Dockerfile is a valid recipe).

The recipe is -f FILE (- for stdin), else Recipe, Dockerfile or Containerfile
in CONTEXT. The image is saved in the local store under every -t name, and
written to each --output:
  type=oci,dest=PATH      OCI image layout tarball (skopeo oci-archive:PATH)
  type=docker,dest=PATH   tarball for "docker load"
  type=local,dest=DIR     the image's root filesystem as a directory`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "recipe file (- for stdin)")
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, "name the image NAME[:TAG] (repeatable)")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "set a build argument KEY=VALUE (repeatable)")
	fl.StringVar(&f.target, "target", "", "build this stage (name or index) instead of the last")
	fl.StringVar(&f.check, "check", "", "lint the recipe without building (--check=error: exit 1 on warnings)")
	fl.Lookup("check").NoOptDefVal = "warn"
	fl.StringArrayVarP(&f.outputs, "output", "o", nil, "write the image: type=oci|docker|local,dest=PATH (repeatable)")
	fl.StringVar(&f.progress, "progress", "auto", "progress output: "+strings.Join(progress.Modes, ", "))
	fl.StringVar(&f.logLimit, "log-limit", "8m", "output shown per step (e.g. 512k, 8m, 1g); -1 for no limit")
	fl.IntVar(&f.jobs, "jobs", 0, "stages built at once (default: number of CPUs)")
	fl.BoolVar(&f.noCache, "no-cache", false, "run every step; neither use nor record the build cache")
	fl.StringArrayVar(&f.noCacheFilter, "no-cache-filter", nil, "do not use the cache for this stage (repeatable)")
	fl.BoolVar(&f.explainCache, "explain-cache", false, "say why the first cache miss of each stage missed")
	fl.BoolVar(&f.squash, "squash", false, "squash the layers the target stage adds into one")
	fl.StringVar(&f.pull, "pull", builder.PullMissing, "pull FROM images: missing (when not in the local store), always or never")
	fl.Lookup("pull").NoOptDefVal = builder.PullAlways
	fl.BoolVar(&f.push, "push", false, "push the image to every -t name (same as --output type=registry)")
	f.remote.register(cmd)
	fl.StringArrayVar(&f.cacheFrom, "cache-from", nil, "use a shared build cache: type=registry,ref=REF or type=local,src=DIR (repeatable)")
	fl.StringArrayVar(&f.cacheTo, "cache-to", nil, "export the build cache: type=registry,ref=REF[,mode=min|max] or type=local,dest=DIR[,mode=...] (repeatable)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable)")
	fl.StringArrayVar(&f.ssh, "ssh", nil, "ssh agent for RUN --mount=type=ssh: default (SSH_AUTH_SOCK) or ID=SOCKET (repeatable)")
	fl.StringArrayVar(&f.contexts, "build-context", nil, "named context NAME=DIR or NAME=docker-image://REF for FROM NAME / COPY --from=NAME (repeatable)")
	fl.StringVar(&f.network, "network", runtime.NetworkDefault, "network of RUN steps: default (private, with outbound access), none, or host (needs --allow network.host)")
	fl.StringArrayVar(&f.allow, "allow", nil, "grant an entitlement: network.host (host networking for --network host and RUN --network=host) (repeatable)")
	fl.StringVar(&f.hostname, "hostname", "", "hostname of RUN steps")
	fl.StringVar(&f.snapshotter, "snapshotter", "overlay", "snapshotter: overlay or native")
	fl.StringVar(&f.platform, "platform", "", "target platform os/arch[/variant]")
	fl.StringVar(&f.memory, "memory", "", "memory limit of RUN steps (e.g. 512m, 2g)")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "process limit of RUN steps")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPU limit of RUN steps, in cores")
	fl.StringArrayVar(&f.securityOpts, "security-opt", nil, "seccomp filter of RUN steps: seccomp=unconfined or seccomp=PROFILE.json (Docker's format); default: Docker's default profile")
	return cmd
}

type output struct {
	typ, dest string
}

func runBuild(cmd *cobra.Command, contextDir string, f buildFlags) error {
	ctx := cmd.Context()
	for _, t := range f.tags {
		if err := image.ValidateName(t); err != nil {
			return fmt.Errorf("-t: %w", err)
		}
	}
	outs, err := parseOutputs(f.outputs)
	if err != nil {
		return err
	}
	buildArgs, err := parseBuildArgs(f.buildArgs)
	if err != nil {
		return err
	}
	contexts, err := parseContexts(f.contexts)
	if err != nil {
		return err
	}
	secrets, err := parseSecrets(f.secrets)
	if err != nil {
		return err
	}
	sshAgents, err := parseSSH(f.ssh)
	if err != nil {
		return err
	}
	limits, err := parseLimits(f)
	if err != nil {
		return err
	}
	seccomp, err := parseSecurityOpts(f.securityOpts)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(contextDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("build context %q is not a directory", contextDir)
	}
	recipe, recipePath, display, err := readRecipe(contextDir, f.file)
	if err != nil {
		return err
	}
	plan, err := parser.Parse(bytes.NewReader(recipe), parser.Options{
		File: display, BuildArgs: buildArgs, Target: f.target, Platform: f.platform,
	})
	if err != nil {
		return err
	}
	st, err := openStore(cmd)
	if err != nil {
		return err
	}
	if f.check != "" {
		return runCheck(cmd, plan, st, contexts, f.check)
	}
	sn, err := openSnapshotter(st, f.snapshotter)
	if err != nil {
		return err
	}
	defer sn.Close()
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	platform, err := parsePlatform(f.platform)
	if err != nil {
		return err
	}
	switch f.pull {
	case builder.PullMissing, builder.PullAlways, builder.PullNever:
	default:
		return fmt.Errorf("--pull must be missing, always or never, not %q", f.pull)
	}
	rep, err := newReporter(f, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer rep.Close()
	remote, err := f.remote.options(cmd, st)
	if err != nil {
		return err
	}
	remote.Progress = func(line string) { rep.Log("%s", line) }
	if f.push && len(f.tags) == 0 {
		return errors.New("--push needs at least one -t name to push to")
	}
	var cacheFrom []remotecache.Source
	for _, spec := range f.cacheFrom {
		sp, err := remotecache.ParseSpec(spec)
		if err != nil {
			return err
		}
		src, err := remotecache.OpenSource(ctx, sp, remote)
		if err != nil {
			return err
		}
		cacheFrom = append(cacheFrom, src)
	}
	var cacheTo []builder.CacheExport
	for _, spec := range f.cacheTo {
		sp, err := remotecache.ParseSpec(spec)
		if err != nil {
			return err
		}
		sink, err := remotecache.OpenSink(sp, remote)
		if err != nil {
			return err
		}
		cacheTo = append(cacheTo, builder.CacheExport{Sink: sink, Mode: sp.Mode})
	}
	buildCache, err := cache.Open(st.Path(cacheDirName(sn)))
	if err != nil {
		return fmt.Errorf("opening build cache: %w", err)
	}
	// Hold off lading prune from the first blob this build writes until
	// its names are tagged.
	release, err := st.Hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	res, err := builder.Build(ctx, plan, builder.Options{
		ContextDir:    contextDir,
		RecipePath:    recipePath,
		Store:         st,
		Snapshots:     sn,
		Epoch:         epoch,
		Network:       f.network,
		Allow:         f.allow,
		Hostname:      f.hostname,
		Limits:        limits,
		Seccomp:       seccomp,
		Progress:      rep,
		Platform:      platform,
		Jobs:          f.jobs,
		Cache:         buildCache,
		NoCache:       f.noCache,
		NoCacheFilter: f.noCacheFilter,
		ExplainCache:  f.explainCache,
		Squash:        f.squash,
		Contexts:      contexts,
		Secrets:       secrets,
		SSH:           sshAgents,
		Pull:          f.pull,
		Remote:        remote,
		CacheFrom:     cacheFrom,
		CacheTo:       cacheTo,
	})
	if err != nil {
		progress.Finish(rep, progress.Outcome{Err: err})
		return withTail(err, f.progress)
	}
	for _, t := range f.tags {
		if err := st.Tag(t, res.Digest.String()); err != nil {
			return fmt.Errorf("tagging %s: %w", t, err)
		}
	}
	for _, o := range outs {
		if o.typ == "registry" {
			f.push = true
			continue
		}
		if err := exporter(o, f.tags).Export(ctx, res.Image); err != nil {
			progress.Finish(rep, progress.Outcome{Err: err})
			return fmt.Errorf("writing %s output to %s: %w", o.typ, o.dest, err)
		}
		rep.Log("wrote %s output: %s", o.typ, o.dest)
	}
	if f.push {
		for _, t := range f.tags {
			d, err := image.Push(ctx, st, res.Image, t, remote)
			if err != nil {
				progress.Finish(rep, progress.Outcome{Err: err})
				return err
			}
			rep.Log("pushed %s@%s", t, d)
		}
	}
	progress.Finish(rep, progress.Outcome{Image: strings.Join(f.tags, ", "), Digest: res.Digest.String()})
	fmt.Fprintln(cmd.OutOrStdout(), res.Digest.String())
	return nil
}

// newReporter makes the progress reporter of --progress and --log-limit.
func newReporter(f buildFlags, w io.Writer) (progress.Reporter, error) {
	opts := progress.Options{NoColor: os.Getenv("NO_COLOR") != ""}
	if f.logLimit == "-1" {
		opts.LogLimit = -1
	} else {
		n, err := parseSize(f.logLimit)
		if err != nil {
			return nil, fmt.Errorf("--log-limit: %w (want SIZE or -1)", err)
		}
		opts.LogLimit = n
	}
	rep, err := progress.NewWithOptions(f.progress, w, opts)
	if err != nil {
		return nil, fmt.Errorf("--progress: %w", err)
	}
	return rep, nil
}

// withTail drops the output tail from a step error when the progress
// view already printed it (plain and tty print failed steps' output).
func withTail(err error, mode string) error {
	var se *builder.StepError
	if errors.As(err, &se) && mode != "quiet" && mode != "json" {
		se.Tail = ""
	}
	return err
}

func exporter(o output, names []string) image.Exporter {
	switch o.typ {
	case "docker":
		return image.NewDockerArchive(o.dest, names)
	case "local":
		return image.NewLocalDir(o.dest)
	default:
		return image.NewOCIArchive(o.dest, names)
	}
}

func parseOutputs(specs []string) ([]output, error) {
	var outs []output
	for _, spec := range specs {
		var o output
		for _, field := range strings.Split(spec, ",") {
			k, v, ok := strings.Cut(field, "=")
			if !ok {
				return nil, fmt.Errorf("--output %q: want type=oci|docker|local,dest=PATH", spec)
			}
			switch k {
			case "type":
				o.typ = v
			case "dest":
				o.dest = v
			default:
				return nil, fmt.Errorf("--output %q: unknown key %q", spec, k)
			}
		}
		switch o.typ {
		case "oci", "docker", "local":
		case "registry":
			outs = append(outs, o)
			continue
		default:
			return nil, fmt.Errorf("--output %q: type must be oci, docker, local or registry", spec)
		}
		if o.dest == "" {
			return nil, fmt.Errorf("--output %q: dest is required", spec)
		}
		outs = append(outs, o)
	}
	return outs, nil
}

func parseBuildArgs(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("--build-arg %q: want KEY=VALUE", kv)
		}
		if !ok {
			// Docker takes the value from the environment.
			var set bool
			if v, set = os.LookupEnv(k); !set {
				continue
			}
		}
		out[k] = v
	}
	return out, nil
}

// parseSecrets reads --secret id=ID[,src=FILE|,env=VAR]; with neither
// src nor env the value comes from the environment variable ID.
func parseSecrets(list []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, spec := range list {
		var id, src, env string
		for _, field := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "id":
				id = v
			case "src", "source":
				src = v
			case "env":
				env = v
			case "type":
				if v != "file" && v != "env" {
					return nil, fmt.Errorf("--secret %q: type must be file or env", spec)
				}
			default:
				return nil, fmt.Errorf("--secret %q: unknown key %q", spec, k)
			}
		}
		if id == "" {
			return nil, fmt.Errorf("--secret %q: id is required", spec)
		}
		switch {
		case src != "":
			b, err := os.ReadFile(src)
			if err != nil {
				return nil, fmt.Errorf("--secret id=%s: %w", id, err)
			}
			out[id] = b
		default:
			if env == "" {
				env = id
			}
			v, ok := os.LookupEnv(env)
			if !ok {
				return nil, fmt.Errorf("--secret id=%s: environment variable %s is not set", id, env)
			}
			out[id] = []byte(v)
		}
	}
	return out, nil
}

// parseSSH reads --ssh default or --ssh ID=SOCKET.
func parseSSH(list []string) (map[string]builder.SSHSource, error) {
	out := map[string]builder.SSHSource{}
	for _, spec := range list {
		id, sock, ok := strings.Cut(spec, "=")
		if !ok {
			sock = os.Getenv("SSH_AUTH_SOCK")
			if sock == "" {
				return nil, fmt.Errorf("--ssh %s: SSH_AUTH_SOCK is not set", spec)
			}
		}
		fi, err := os.Stat(sock)
		if err != nil || fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("--ssh %s: %s is not an agent socket (key files are not supported; use ssh-agent)", spec, sock)
		}
		out[id] = builder.SSHSource{Socket: sock}
	}
	return out, nil
}

func parseContexts(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--build-context %q: want NAME=DIR or NAME=docker-image://REF", kv)
		}
		if !strings.Contains(v, "://") && !strings.HasPrefix(v, "oci-archive:") && !strings.HasPrefix(v, "docker-archive:") {
			abs, err := filepath.Abs(v)
			if err != nil {
				return nil, err
			}
			v = abs
		}
		out[strings.ToLower(k)] = v
	}
	return out, nil
}

func parseLimits(f buildFlags) (runtime.Limits, error) {
	l := runtime.Limits{Pids: f.pidsLimit, CPUs: f.cpus}
	if f.memory != "" {
		n, err := parseSize(f.memory)
		if err != nil {
			return l, fmt.Errorf("--memory: %w", err)
		}
		l.Memory = n
	}
	return l, nil
}

// parseSize reads "512", "512k", "64m", "2g" (binary units).
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for suffix, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30} {
		if t, ok := strings.CutSuffix(strings.TrimSuffix(s, "b"), suffix); ok {
			s, mult = t, m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return n * mult, nil
}

func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{}, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("--platform: %w", err)
	}
	return *p, nil
}

// readRecipe returns the recipe bytes, its path ("" for stdin) and the name
// used in error locations.
func readRecipe(contextDir, file string) ([]byte, string, string, error) {
	if file == "-" {
		b, err := readLimited(os.Stdin)
		return b, "", "<stdin>", err
	}
	if file == "" {
		for _, name := range []string{"Recipe", "Dockerfile", "Containerfile"} {
			p := filepath.Join(contextDir, name)
			if _, err := os.Stat(p); err == nil {
				file = p
				break
			}
		}
		if file == "" {
			return nil, "", "", fmt.Errorf("no recipe: give -f FILE, or put a Recipe, Dockerfile or Containerfile in %s", contextDir)
		}
	}
	r, err := os.Open(file)
	if err != nil {
		return nil, "", "", fmt.Errorf("reading recipe: %w", err)
	}
	defer r.Close()
	b, err := readLimited(r)
	if err != nil {
		return nil, "", "", fmt.Errorf("reading recipe: %w", err)
	}
	return b, file, filepath.Base(file), nil
}

// readLimited reads a recipe up to one byte past parser.MaxRecipeSize, so
// that the parser rejects a larger one instead of reading it cut short.
func readLimited(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, parser.MaxRecipeSize+1))
}

func sourceDateEpoch() (*int64, error) {
	v, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
	}
	return &n, nil
}

func openStore(cmd *cobra.Command) (*store.Store, error) {
	root, _ := cmd.Flags().GetString("root")
	if root == "" {
		root = store.DefaultRoot()
	}
	st, err := store.Open(root)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	return st, nil
}

// cacheDirName is the cache directory of a snapshotter's root: records
// name snapshots, so each snapshotter keeps its own.
func cacheDirName(sn snapshot.Snapshotter) string {
	if snapshot.IsNative(sn) {
		return "cache-native"
	}
	return "cache"
}

// openSnapshotter opens the chosen snapshotter under the store, falling
// back to plain copies where overlayfs cannot be mounted.
func openSnapshotter(st *store.Store, kind string) (snapshot.Snapshotter, error) {
	switch kind {
	case "overlay":
		dir := st.Path("snapshots", "overlay")
		if err := snapshot.OverlaySupported(dir); err == nil {
			return snapshot.NewOverlay(dir)
		}
		return snapshot.NewNative(st.Path("snapshots", "native"))
	case "native":
		return snapshot.NewNative(st.Path("snapshots", "native"))
	}
	return nil, errors.New("--snapshotter must be overlay or native")
}

// runCheck is build --check: the linter's warnings, and no build. With
// --check=error (or the recipe's "# check=error=true") warnings fail.
func runCheck(cmd *cobra.Command, plan *parser.Plan, st *store.Store, contexts map[string]string, mode string) error {
	if mode != "warn" && mode != "error" {
		return fmt.Errorf("--check must be given alone or as --check=error, not %q", mode)
	}
	ws := builder.Lint(plan, builder.Options{Store: st, Contexts: contexts})
	for _, w := range ws {
		fmt.Fprintln(cmd.OutOrStdout(), w)
	}
	if len(ws) > 0 && (mode == "error" || plan.LintConfig().Error) {
		return fmt.Errorf("%s: %d linter warning(s)", plan.File, len(ws))
	}
	return nil
}
