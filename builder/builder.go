package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sync/errgroup"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/copier"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/progress"
	"github.com/lading-build/lading/remotecache"
	"github.com/lading-build/lading/runtime"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

// Options say how Run builds a parsed plan.
type Options struct {
	// ContextDir is the build context directory.
	ContextDir string
	// RecipePath is the recipe's path, used to find "<recipe>.dockerignore"
	// next to it; "" when the recipe came from stdin.
	RecipePath string
	Store      *store.Store
	Snapshots  snapshot.Snapshotter
	// Progress receives the build's events and the output of RUN steps;
	// nil discards them.
	Progress progress.Reporter
	Platform v1.Platform
	// ExportsCache says the caller exports the build's cache records
	// (CacheTo): every step's layer blob is then written, also those no
	// output needs.
	ExportsCache bool
	// Cache is the step cache; nil builds everything.
	Cache *cache.Cache
	// CacheFrom are remote caches consulted when the local cache misses:
	// a hit there fetches the step's layer and applies it instead of
	// running the step.
	CacheFrom []remotecache.Source
	// CopyKeyed, when set, is called after a COPY or ADD from a context
	// directory is keyed and before its files are copied: a test hook,
	// for changing a source in between.
	CopyKeyed func()
	// PartReused, when set, is called when the layer of a COPY to dest
	// copied its files' compressed bytes from an earlier layer: a test
	// hook.
	PartReused func(dest string)
	Settings
}

// Settings say how steps run and how the cache is used; a Request and
// Options share them.
type Settings struct {
	// Epoch is SOURCE_DATE_EPOCH: when set, every timestamp the build
	// writes (config, history, layer mtimes) is clamped to it (see
	// EpochFromEnv).
	Epoch *int64
	// Network is the network mode of RUN steps without --network:
	// NetworkDefault (when empty; a private network with outbound
	// access), NetworkNone, or NetworkHost (which needs AllowNetworkHost
	// in Allow).
	Network string
	// Allow are the entitlements the user granted (AllowNetworkHost).
	Allow    []string
	Hostname string
	Limits   Limits
	// Seccomp is the syscall filter of RUN steps, as runtime.Spec.Seccomp:
	// "" for Docker's default profile, runtime.SeccompUnconfined, or a
	// profile's JSON text (see ParseSecurityOpts).
	Seccomp string
	// Jobs is how many RUN steps may execute at once; 0 means the number
	// of CPUs. Other steps are not bounded.
	Jobs int
	// NoCache runs every step (and records nothing); NoCacheFilter does
	// that for the named stages only.
	NoCache       bool
	NoCacheFilter []string
	// ExplainCache reports, for the first miss of each stage, why it
	// missed.
	ExplainCache bool
	// Squash turns the layers the target stage adds on top of its base
	// into one.
	Squash bool
	// Contexts are named build contexts (--build-context NAME=VALUE): a
	// directory, or an image reference prefixed "docker-image://" (or an
	// "oci-archive:"/"docker-archive:" reference). FROM NAME and
	// COPY --from=NAME use them before stages and images (see
	// ParseContexts).
	Contexts map[string]string
	// Secrets are the values of --secret, by id, for
	// RUN --mount=type=secret; they never reach an image, a key or a log
	// (see ParseSecrets).
	Secrets map[string][]byte
	// SSH are the agents of --ssh, by id ("default" for the plain flag;
	// see ParseSSH).
	SSH map[string]SSHSource
	// Pull says when FROM images come from their registry: PullMissing
	// (default: only when not in the local store), PullAlways or
	// PullNever.
	Pull string
	// Remote configures registry access (pulls, and for Build pushes and
	// shared caches).
	Remote image.RemoteOptions
}

// Pull policies.
const (
	PullMissing = "missing"
	PullAlways  = "always"
	PullNever   = "never"
)

// Result is a built image.
type Result struct {
	// Image is the built image, of Platform; nil for several platforms,
	// whose images are Images, listed by the image index Index.
	Image    v1.Image
	Platform v1.Platform
	Images   []Result
	Index    v1.ImageIndex
	// Digest is the digest of the image's manifest, or of the index; both
	// are saved in the store.
	Digest v1.Hash

	// chains are the cache keys of the target stage's steps (with the
	// stages it is built FROM), and of every stage built: what
	// --cache-to mode=min and mode=max export.
	chains struct{ target, all []string }
}

// StepError is a failed step: Error() is the one line the user sees
// ("Recipe:12: RUN make: exit status 2"), Tail the last lines of its output.
type StepError struct {
	Loc  parser.Location
	Msg  string
	Tail string
	Err  error
}

func (e *StepError) Error() string { return e.Loc.String() + ": " + e.Msg }
func (e *StepError) Unwrap() error { return e.Err }

// Run runs a parsed plan and returns the image of its target stage, saved
// in the store. It is the engine under Build, for callers that parse and
// open the store and snapshotter themselves.
func Run(ctx context.Context, plan *parser.Plan, opts Options) (*Result, error) {
	res, err := runAll(ctx, []*parser.Plan{plan}, opts)
	if err != nil {
		return nil, err
	}
	return &res[0], nil
}

// withDefaults checks opts and fills in the defaults of a build of plan.
func withDefaults(plan *parser.Plan, opts Options) (Options, error) {
	if opts.Store == nil || opts.Snapshots == nil {
		return opts, errors.New("builder: store and snapshotter are required")
	}
	if opts.Progress == nil {
		opts.Progress = progress.Discard()
	}
	if opts.Jobs <= 0 {
		opts.Jobs = goruntime.NumCPU()
	}
	if opts.Network == "" {
		opts.Network = runtime.NetworkDefault
	}
	if err := checkNetwork(plan, opts); err != nil {
		return opts, err
	}
	// A profile of the user's is checked before any step; Docker's
	// default is compiled when the first RUN needs it (warmRun).
	if opts.Seccomp != "" {
		if err := runtime.CheckSeccomp(opts.Seccomp); err != nil {
			return opts, err
		}
	}
	if opts.Hostname == "" {
		opts.Hostname = "lading"
	}
	if opts.Platform.OS == "" {
		opts.Platform = hostPlatform()
		if plan.Platform != "" {
			p, err := v1.ParsePlatform(plan.Platform)
			if err != nil {
				return opts, fmt.Errorf("target platform: %w", err)
			}
			opts.Platform = *p
		}
	}
	return opts, nil
}

// runAll builds one plan per target platform (each parsed with that
// platform) as one build: a stage that is the same for every target (see
// shareStages) is built once, the others once per target, all at most
// Jobs at a time. It returns the target images in the order of plans.
func runAll(ctx context.Context, plans []*parser.Plan, opts Options) ([]Result, error) {
	ignore, err := readIgnore(opts.ContextDir, opts.RecipePath)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%x", time.Now().UnixNano())
	ids := new(atomic.Int64)
	var runs, layers chan struct{}
	builds := make([]*build, len(plans))
	for i, plan := range plans {
		o := opts
		if len(plans) > 1 {
			o.Platform = v1.Platform{} // each plan's own target
		}
		if o, err = withDefaults(plan, o); err != nil {
			return nil, err
		}
		if runs == nil {
			runs = make(chan struct{}, o.Jobs)
			layers = make(chan struct{}, 1)
		}
		b := &build{
			opts:    o,
			plan:    plan,
			ignore:  ignore,
			stages:  make([]*future, len(plan.Stages)),
			foreign: make([]bool, len(plan.Stages)),
			shared:  make([]bool, len(plan.Stages)),
			runs:    runs,
			layers:  layers,
			id:      fmt.Sprintf("%s-%d", id, i),
			rep:     o.Progress,
			stepIDs: ids,
		}
		if len(plans) > 1 {
			b.label = plan.Platform
		}
		b.output = outputChain(b)
		defer b.cleanup(context.WithoutCancel(ctx))
		defer b.closeNetns()
		if err := b.lint(); err != nil {
			return nil, err
		}
		if err := b.validate(); err != nil {
			return nil, err
		}
		b.initStages()
		builds[i] = b
	}
	shareStages(builds)

	// Keep the garbage collector away while this build writes blobs,
	// snapshots and records nothing references yet.
	release, err := opts.Store.Hold(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if c := opts.Cache; c != nil && !opts.NoCache {
		stat, err := cache.OpenStatCache(c.StatDir(), opts.ContextDir)
		if err != nil {
			return nil, fmt.Errorf("opening build cache: %w", err)
		}
		for _, b := range builds {
			b.stat = stat
		}
		defer func() {
			if err := stat.Save(); err != nil {
				builds[0].rep.Log("warning: saving the context's stat cache: %v", err)
			}
		}()
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range builds {
		g.Go(func() error { return b.runStages(gctx) })
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	results := make([]Result, len(builds))
	for i, b := range builds {
		r, err := b.finish(ctx)
		if err != nil {
			return nil, err
		}
		results[i] = *r
	}
	return results, nil
}

// finish assembles the target stage's image and saves it in the store.
func (b *build) finish(ctx context.Context) (*Result, error) {
	target := b.stages[b.plan.Target].res
	if err := target.resolve(); err != nil {
		return nil, err
	}
	var err error
	if b.opts.Squash {
		if target, err = b.squash(ctx, target); err != nil {
			return nil, err
		}
	}
	if b.plan.Platform != "" && b.plan.Platform != parser.HostPlatform() || b.label != "" {
		// An image built for an explicit target platform says that
		// platform, whatever its base said (BuildKit's rule).
		target = target.clone()
		p := b.opts.Platform
		target.cfg.OS, target.cfg.Architecture, target.cfg.Variant = p.OS, p.Architecture, p.Variant
	}
	img, err := target.image(b.opts)
	if err != nil {
		return nil, fmt.Errorf("assembling image: %w", err)
	}
	dgst, err := image.Save(ctx, b.opts.Store, img)
	if err != nil {
		return nil, fmt.Errorf("saving image: %w", err)
	}
	res := &Result{Image: img, Digest: dgst, Platform: b.opts.Platform}
	res.chains.target = b.stages[b.plan.Target].res.chain
	for _, f := range b.stages {
		if f != nil && f.res != nil {
			res.chains.all = append(res.chains.all, f.res.chain...)
		}
	}
	return res, nil
}

// build is the state of one Build call.
type build struct {
	opts Options
	plan *parser.Plan
	// ignore holds the .dockerignore patterns (ignoreMatcher).
	ignore []string
	// stages holds a future per needed stage, resolved when it is built;
	// foreign[i] says stage i is built by another target's build, shared[i]
	// that this build runs it for every target.
	stages  []*future
	foreign []bool
	shared  []bool
	// runs holds a token per running RUN step (--jobs), shared by the
	// builds of every target platform.
	runs chan struct{}
	// layers holds a token per layer blob being compressed in the
	// background, shared like runs: one at a time, as a big layer's gzip
	// already uses every CPU and each writer holds megabytes of buffers.
	// A layer whose files' member is copied from an earlier blob takes
	// none.
	layers chan struct{}
	// output marks the stages whose layers the target image holds.
	output []bool
	// pending counts the work running beside the steps (layer blobs,
	// cache records); failed keeps the build's first error.
	pending sync.WaitGroup
	failed  firstError
	cancel  context.CancelFunc
	id      string
	rep     progress.Reporter
	stat    *cache.StatCache
	// label names the target platform in progress when several are built.
	label   string
	stepIDs *atomic.Int64

	mu    sync.Mutex
	pulls map[string]*pullState
	seq   int
	// snaps are the snapshots this build created, with their parents,
	// removed at the end (children before parents).
	snaps []ownedSnap

	netMu sync.Mutex
	net   *runtime.Netns // the private network of RUN steps, once made
	// hasRun and defaultNet say the stages to build have RUN steps, and
	// RUN steps on the default network (validate); warm makes what they
	// need ahead of the first one, once.
	hasRun, defaultNet bool
	warm               sync.Once
	// prefetched holds the requests of the COPY steps from the context
	// whose sources are known before the build (validate); selections
	// their results, by selectKey (prefetch.go).
	prefetched []copier.Request
	selMu      sync.Mutex
	selections map[string]*selection
}

func (b *build) newName(kind string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	return fmt.Sprintf("%s-%s-%d", kind, b.id, b.seq)
}

func (b *build) newStepID() int {
	return int(b.stepIDs.Add(1))
}

type ownedSnap struct{ name, parent string }

// own records a snapshot (on parent) for removal at the end of the build.
func (b *build) own(name, parent string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.snaps = append(b.snaps, ownedSnap{name, parent})
}

// cleanup removes the snapshots the build owns: each as soon as no other
// one stands on it, so the stages' chains go in parallel.
func (b *build) cleanup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	owned := map[string]bool{}
	for _, sn := range b.snaps {
		owned[sn.name] = true
	}
	kids := map[string]int{}
	parent := map[string]string{}
	for _, sn := range b.snaps {
		parent[sn.name] = sn.parent
		if owned[sn.parent] {
			kids[sn.parent]++
		}
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		remove func(name string)
	)
	remove = func(name string) {
		defer wg.Done()
		err := b.opts.Snapshots.Remove(ctx, name)
		if err != nil && !errors.Is(err, snapshot.ErrNotFound) {
			// Its parent stays too: something still stands on it.
			b.rep.Log("warning: removing snapshot %s: %v", name, err)
			return
		}
		p := parent[name]
		if !owned[p] {
			return
		}
		mu.Lock()
		kids[p]--
		last := kids[p] == 0
		mu.Unlock()
		if last {
			wg.Add(1)
			go remove(p)
		}
	}
	var leaves []string
	for _, sn := range b.snaps {
		if kids[sn.name] == 0 {
			leaves = append(leaves, sn.name)
		}
	}
	wg.Add(len(leaves))
	for _, name := range leaves {
		go remove(name)
	}
	wg.Wait()
}

// readIgnore loads "<recipe>.dockerignore" next to the recipe, else
// ".dockerignore" at the context root, and checks its patterns.
func readIgnore(contextDir, recipePath string) ([]string, error) {
	var candidates []string
	if recipePath != "" {
		candidates = append(candidates, recipePath+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(contextDir, ".dockerignore"))
	for _, p := range candidates {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading ignore file: %w", err)
		}
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if len(patterns) == 0 {
			return nil, nil
		}
		if _, err := patternmatcher.New(patterns); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return patterns, nil
	}
	return nil, nil
}

// ignoreMatcher returns a matcher of the .dockerignore patterns of its
// own, nil when there are none. A patternmatcher compiles a pattern when
// it first uses it, so one matcher must never serve two walks at once
// (stages, and the selections made when the build starts, walk the
// context in parallel).
func (b *build) ignoreMatcher() *patternmatcher.PatternMatcher {
	if len(b.ignore) == 0 {
		return nil
	}
	pm, err := patternmatcher.New(b.ignore)
	if err != nil {
		panic(fmt.Sprintf("checked .dockerignore patterns do not parse: %v", err)) // readIgnore parsed them
	}
	return pm
}

type pullState struct {
	mu   sync.Mutex
	done bool
}

// pullLock serializes pulls of one reference within the build.
func (b *build) pullLock(ref string) func() {
	b.mu.Lock()
	if b.pulls == nil {
		b.pulls = map[string]*pullState{}
	}
	p, ok := b.pulls[ref]
	if !ok {
		p = &pullState{}
		b.pulls[ref] = p
	}
	b.mu.Unlock()
	p.mu.Lock()
	return p.mu.Unlock
}

// pulled reports whether ref was pulled by this build (callers hold its
// pull lock).
func (b *build) pulled(ref string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pulls[ref] != nil && b.pulls[ref].done
}

func (b *build) markPulled(ref string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pulls[ref].done = true
}
