package builder

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	goruntime "runtime"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/copier"
)

// A COPY from the context is keyed by the digests of the files it
// selects: a walk of its sources and a stat of every file (the stat
// cache gives the digests). Run one after the other, step by step, these
// walks are most of a cached rebuild. The build knows before any step
// runs the requests of the COPY steps whose arguments have known values
// (validate), so it walks them all at once when it starts, on every CPU;
// each step then takes its result, waiting for it if it is not there
// yet. A result is keyed by every field copier.Select reads, so a step
// only ever gets the selection its own request makes.

// selection is the result of selecting and hashing one COPY's sources:
// the digests only, not the selected files' stat, which would keep a
// few hundred bytes per context file alive for the whole build.
type selection struct {
	once    sync.Once
	digests []cache.FileDigest
	err     error
}

// selectKey is the memo key of req: the fields copier.Select reads.
func selectKey(req copier.Request) string {
	var ignore []string
	if req.Ignore != nil {
		for _, p := range req.Ignore.Patterns() {
			ignore = append(ignore, fmt.Sprint(p.Exclusion(), p.String()))
		}
	}
	return fmt.Sprintf("%q %q %q %v %v %q", req.SrcRoot, req.Sources, req.Exclude, req.Add, req.Parents, ignore)
}

// localOnly reports whether req names only local sources, which are all a
// selection may hold (URLs and git sources are keyed by what they fetch).
func localOnly(req copier.Request) bool {
	for _, src := range req.Sources {
		if strings.Contains(src, "://") || copier.IsGitURL(src) {
			return false
		}
	}
	return true
}

// selected returns the digests of the files req selects, computed once
// per build.
func (b *build) selected(ctx context.Context, req copier.Request) ([]cache.FileDigest, error) {
	b.selMu.Lock()
	if b.selections == nil {
		b.selections = map[string]*selection{}
	}
	key := selectKey(req)
	sel := b.selections[key]
	if sel == nil {
		sel = &selection{}
		b.selections[key] = sel
	}
	b.selMu.Unlock()
	sel.once.Do(func() {
		sources, err := copier.Select(req)
		if err == nil {
			sel.digests, err = b.digestSources(ctx, sources)
		}
		sel.err = err
	})
	return sel.digests, sel.err
}

// digestSources digests the local files among sources (not URLs or git
// repositories) through the build's stat cache.
func (b *build) digestSources(ctx context.Context, sources []copier.Source) ([]cache.FileDigest, error) {
	files := make([]cache.File, 0, len(sources))
	for _, src := range sources {
		if src.URL == "" {
			files = append(files, cache.File{Rel: src.Rel, Abs: src.Path, Info: src.Info})
		}
	}
	digests, err := cache.DigestFiles(ctx, b.stat, files)
	if err != nil {
		return nil, fmt.Errorf("hashing sources: %w", err)
	}
	return digests, nil
}

// prefetch selects and hashes, in the background, the sources of the COPY
// steps validate found; errors are left for the steps to meet.
func (b *build) prefetch(ctx context.Context) {
	if len(b.prefetched) == 0 || b.stat == nil {
		return
	}
	b.pending.Add(1)
	go func() {
		defer b.pending.Done()
		var g errgroup.Group
		g.SetLimit(goruntime.GOMAXPROCS(0))
		for _, req := range b.prefetched {
			if ctx.Err() != nil {
				break
			}
			g.Go(func() error {
				_, _ = b.selected(ctx, req)
				return nil
			})
		}
		_ = g.Wait()
	}()
}
