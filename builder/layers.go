package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/cache"
)

// A step's layer blob is written in the background once its snapshot is
// committed, so compressing one step overlaps the next step's run. The
// stage goes on with a pendingLayer, which the image assembly waits for.
// A layer that no output needs (a stage that only feeds a COPY --from,
// say) is written only if something asks for it during the build; its
// cache record says the layer is unwritten, and a later build that needs
// it diffs the cached snapshot then.

// pendingLayer is a step's layer, being written or written on demand; it
// resolves to nil when the step changed nothing. It implements v1.Layer
// by waiting.
type pendingLayer struct {
	once  sync.Once
	run   func() // writes the layer, then closes done
	eager bool   // written from the start, not on demand
	done  chan struct{}
	layer v1.Layer
	err   error
	// hist is the index of the step's history entry in its stage, marked
	// empty if the layer resolves to nil.
	hist int
	spec layerSpec
	// part is where the written layer holds spec.split's entries, if known.
	part *cache.ContentPart
}

// layerLater returns the layer of committed snapshot name, written in the
// background now when eager, else when first asked for. written, if not
// nil, runs once the layer is there.
func (b *build) layerLater(ctx context.Context, name string, eager bool, spec layerSpec, written func(v1.Layer) error) *pendingLayer {
	p := &pendingLayer{done: make(chan struct{}), eager: eager, spec: spec}
	p.run = func() {
		b.background(func() error {
			defer close(p.done)
			p.layer, p.part, p.err = b.layerOf(ctx, name, spec)
			if p.err == nil && written != nil {
				return written(p.layer)
			}
			return p.err
		})
	}
	if eager {
		p.start()
	}
	return p
}

// start begins writing the layer, once.
func (p *pendingLayer) start() { p.once.Do(p.run) }

// background runs fn beside the build's steps; runStages waits for it
// and fails the build with its error.
func (b *build) background(fn func() error) {
	b.pending.Add(1)
	go func() {
		defer b.pending.Done()
		if err := fn(); err != nil {
			b.fail(err)
		}
	}()
}

// settle waits for a pending layer and returns what it resolved to.
func settle(l v1.Layer) (v1.Layer, error) {
	if p, ok := l.(*pendingLayer); ok {
		return p.wait()
	}
	return l, nil
}

func (p *pendingLayer) wait() (v1.Layer, error) {
	p.start()
	<-p.done
	return p.layer, p.err
}

func (p *pendingLayer) get() (v1.Layer, error) {
	l, err := p.wait()
	if err == nil && l == nil {
		err = errors.New("empty layer")
	}
	return l, err
}

func (p *pendingLayer) Digest() (v1.Hash, error) {
	l, err := p.get()
	if err != nil {
		return v1.Hash{}, err
	}
	return l.Digest()
}

func (p *pendingLayer) DiffID() (v1.Hash, error) {
	l, err := p.get()
	if err != nil {
		return v1.Hash{}, err
	}
	return l.DiffID()
}

func (p *pendingLayer) Compressed() (io.ReadCloser, error) {
	l, err := p.get()
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

func (p *pendingLayer) Uncompressed() (io.ReadCloser, error) {
	l, err := p.get()
	if err != nil {
		return nil, err
	}
	return l.Uncompressed()
}

func (p *pendingLayer) Size() (int64, error) {
	l, err := p.get()
	if err != nil {
		return 0, err
	}
	return l.Size()
}

func (p *pendingLayer) MediaType() (types.MediaType, error) {
	l, err := p.get()
	if err != nil {
		return "", err
	}
	return l.MediaType()
}

// resolve waits for the stage's pending layers, drops those that came out
// empty and marks their history entries empty.
func (r *stageResult) resolve() error {
	layers := make([]v1.Layer, 0, len(r.layers))
	startLayers := r.start.layers
	for i, l := range r.layers {
		if p, ok := l.(*pendingLayer); ok {
			got, err := p.wait()
			if err != nil {
				return fmt.Errorf("writing layer: %w", err)
			}
			if got == nil {
				r.history[p.hist].EmptyLayer = true
				if i < r.start.layers {
					startLayers--
				}
				continue
			}
			l = got
		}
		layers = append(layers, l)
	}
	r.layers, r.start.layers = layers, startLayers
	return nil
}

// layerNeeded reports whether the build needs the layers of stage s's
// steps: its image is an output, or the cache is exported.
func (b *build) layerNeeded(s *stage) bool {
	return b.output[s.st.Index] || b.opts.ExportsCache
}

// outputChain marks the stages whose layers end up in the target image:
// the target and the stages it is built FROM.
func outputChain(b *build) []bool {
	out := make([]bool, len(b.plan.Stages))
	for i := b.plan.Target; i >= 0 && i < len(out) && !out[i]; i = b.plan.Stages[i].FromStage {
		out[i] = true
	}
	return out
}
