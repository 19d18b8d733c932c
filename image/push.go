package image

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lading-build/lading/store"
)

// Push uploads img to dest (name[:tag|@digest], read like Pull reads
// names) and returns the manifest digest the registry now has. Blobs the
// registry already has are not uploaded (ggcr asks with HEAD first);
// opts.Jobs blobs go up at once. img is usually a stored image (Resolve);
// its layers are read from their blob files in s, which Push does not
// change. Errors are *RemoteError: "pushing app:1 to 127.0.0.1:5000:
// unauthorized: ...".
func Push(ctx context.Context, s *store.Store, img v1.Image, dest string, opts RemoteOptions) (v1.Hash, error) {
	_ = s // the store img's blobs live in; kept for symmetry with Pull
	r, err := opts.parse(dest)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", dest, err)
	}
	dgst, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", dest, err)
	}
	ropts := opts.remoteOptions(ctx)
	if opts.Progress != nil {
		updates := make(chan v1.Update, 16)
		done := make(chan struct{})
		go func() {
			defer close(done)
			reportPush(updates, opts)
		}()
		defer func() { <-done }()
		ropts = append(ropts, remote.WithProgress(updates))
	}
	if err := remote.Write(r, img, ropts...); err != nil {
		return v1.Hash{}, &RemoteError{Op: "pushing", Ref: dest, Registry: r.Context().RegistryStr(), Err: err}
	}
	opts.progress("%s: %s", r.Name(), dgst)
	return dgst, nil
}

// reportPush turns ggcr's byte counts into a line per quarter of the
// upload. ggcr closes the channel when the write ends.
func reportPush(updates <-chan v1.Update, o RemoteOptions) {
	last := -1
	for u := range updates {
		if u.Error != nil || u.Total == 0 {
			continue
		}
		q := int(u.Complete * 4 / u.Total)
		if q != last {
			last = q
			o.progress("uploaded %s of %s", humanBytes(u.Complete), humanBytes(u.Total))
		}
	}
}

// NewRegistry returns an exporter pushing the image to every name in
// names (see Push).
func NewRegistry(s *store.Store, names []string, opts RemoteOptions) Exporter {
	return &registryPush{store: s, names: names, opts: opts}
}

type registryPush struct {
	store *store.Store
	names []string
	opts  RemoteOptions
}

func (r *registryPush) Export(ctx context.Context, img v1.Image) error {
	if len(r.names) == 0 {
		return errors.New("pushing: no name to push to")
	}
	for _, n := range r.names {
		if _, err := Push(ctx, r.store, img, n, r.opts); err != nil {
			return err
		}
	}
	return nil
}

// ExportIndex pushes every image of idx, then idx, to each name.
func (r *registryPush) ExportIndex(ctx context.Context, idx v1.ImageIndex) error {
	if len(r.names) == 0 {
		return errors.New("pushing: no name to push to")
	}
	for _, n := range r.names {
		if _, err := PushIndex(ctx, idx, n, r.opts); err != nil {
			return err
		}
	}
	return nil
}
