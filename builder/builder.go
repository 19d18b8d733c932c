package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/runtime"
	"github.com/lading-build/lading/snapshot"
	"github.com/lading-build/lading/store"
)

// Options say how to build.
type Options struct {
	// ContextDir is the build context directory.
	ContextDir string
	// RecipePath is the recipe's path, used to find "<recipe>.dockerignore"
	// next to it; "" when the recipe came from stdin.
	RecipePath string
	Store      *store.Store
	Snapshots  snapshot.Snapshotter
	// Epoch is SOURCE_DATE_EPOCH: when set, every timestamp the build
	// writes (config, history, layer mtimes) is clamped to it.
	Epoch *int64
	// Network is the default network mode of RUN steps.
	Network  string
	Hostname string
	Limits   runtime.Limits
	// Progress receives human-readable progress and the output of RUN
	// steps; nil discards it.
	Progress io.Writer
	Platform v1.Platform
}

// Result is a built image.
type Result struct {
	Image  v1.Image
	Digest v1.Hash // manifest digest; the image is saved in the store
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

// Build runs the plan and returns the image of its target stage.
func Build(ctx context.Context, plan *parser.Plan, opts Options) (*Result, error) {
	if opts.Store == nil || opts.Snapshots == nil {
		return nil, errors.New("builder: store and snapshotter are required")
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Network == "" {
		opts.Network = runtime.NetworkHost
	}
	if opts.Hostname == "" {
		opts.Hostname = "lading"
	}
	if opts.Platform.OS == "" {
		opts.Platform = hostPlatform()
	}
	ignore, err := readIgnore(opts.ContextDir, opts.RecipePath)
	if err != nil {
		return nil, err
	}
	b := &build{
		opts:    opts,
		plan:    plan,
		ignore:  ignore,
		results: make(map[int]*stageResult),
		id:      fmt.Sprintf("%x", time.Now().UnixNano()),
		out:     newProgress(opts.Progress),
	}
	defer b.cleanup(context.WithoutCancel(ctx))

	for i, st := range plan.Stages {
		if !plan.Needed[i] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, err := b.runStage(ctx, st)
		if err != nil {
			return nil, err
		}
		b.results[i] = res
	}
	target := b.results[plan.Target]
	img, err := target.image(opts)
	if err != nil {
		return nil, fmt.Errorf("assembling image: %w", err)
	}
	dgst, err := image.Save(ctx, opts.Store, img)
	if err != nil {
		return nil, fmt.Errorf("saving image: %w", err)
	}
	return &Result{Image: img, Digest: dgst}, nil
}

// build is the state of one Build call.
type build struct {
	opts    Options
	plan    *parser.Plan
	ignore  *patternmatcher.PatternMatcher
	results map[int]*stageResult
	id      string
	out     *progress
	seq     int
	// snaps are the snapshots this build created, removed at the end in
	// reverse order (children before parents).
	snaps []string
}

func (b *build) newName(kind string) string {
	b.seq++
	return fmt.Sprintf("%s-%s-%d", kind, b.id, b.seq)
}

func (b *build) cleanup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i := len(b.snaps) - 1; i >= 0; i-- {
		if err := b.opts.Snapshots.Remove(ctx, b.snaps[i]); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
			fmt.Fprintf(b.opts.Progress, "warning: removing snapshot %s: %v\n", b.snaps[i], err)
		}
	}
}

// readIgnore loads "<recipe>.dockerignore" next to the recipe, else
// ".dockerignore" at the context root.
func readIgnore(contextDir, recipePath string) (*patternmatcher.PatternMatcher, error) {
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
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return pm, nil
	}
	return nil, nil
}
