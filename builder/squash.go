package builder

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/snapshot"
)

// squash replaces the layers a stage added on top of its base by one layer
// holding their combined change; the stage's history entries stay, all
// marked empty but the last.
func (b *build) squash(ctx context.Context, r *stageResult) (*stageResult, error) {
	if len(r.layers) == r.start.layers {
		return r, nil
	}
	var layer v1.Layer
	err := b.withView(ctx, r.start.snap, func(lower string) error {
		return b.withView(ctx, r.snap, func(upper string) error {
			var err error
			layer, _, err = b.writeLayer(ctx, func(lw *image.LayerWriter) error {
				return snapshot.DiffDirs(ctx, lower, upper, lw, snapshot.DiffOptions{Epoch: b.opts.Epoch})
			})
			if err != nil {
				return fmt.Errorf("squashing: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := r.clone()
	out.layers = out.layers[:r.start.layers]
	for i := r.start.history; i < len(out.history); i++ {
		out.history[i].EmptyLayer = true
	}
	if layer != nil {
		out.layers = append(out.layers, layer)
		last := len(out.history) - 1
		out.history[last].EmptyLayer = false
		out.history[last].Comment = "lading (squashed)"
	}
	return out, nil
}

// withView shows a committed snapshot read-only at a directory for the
// duration of fn; "" is an empty tree.
func (b *build) withView(ctx context.Context, snap string, fn func(dir string) error) error {
	sn := b.opts.Snapshots
	key := b.newName("view")
	mounts, err := sn.View(ctx, key, snap)
	if err != nil {
		return fmt.Errorf("preparing view: %w", err)
	}
	defer sn.Remove(context.WithoutCancel(ctx), key)
	return b.withMounted(mounts, fn)
}
