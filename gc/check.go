package gc

import (
	"context"
	"errors"
	"fmt"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/store"
)

// Report says what Check found and repaired.
type Report struct {
	Blobs   int      // blobs verified
	Bad     []string // corrupt blobs, removed
	Records int      // cache records dropped: their layer blob is gone
	Broken  []string // names whose image is incomplete (pull or build it again)
}

// Check verifies every blob of the store against its digest, removes the
// corrupt ones, drops the cache records whose layer blob is missing (so
// the next build runs those steps again) and lists the image names whose
// blobs are incomplete. It holds the store's collection lock exclusively;
// waiting, when not nil, is called once if it has to wait for it.
func Check(ctx context.Context, st *store.Store, waiting func()) (Report, error) {
	release, err := st.Collect(ctx, waiting)
	if err != nil {
		return Report{}, fmt.Errorf("checking: %w", err)
	}
	defer release()
	var rep Report
	blobs, err := st.Blobs()
	if err != nil {
		return rep, err
	}
	for _, d := range blobs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.Blobs++
		if err := st.VerifyBlob(d); errors.Is(err, store.ErrCorruptBlob) {
			rep.Bad = append(rep.Bad, d)
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return rep, err
		}
	}
	parts, err := openParts(st)
	if err != nil {
		return rep, err
	}
	defer closeAll(parts)
	for _, p := range parts {
		if p.c == nil {
			continue
		}
		recs, err := p.c.Records()
		if err != nil {
			return rep, err
		}
		for _, r := range recs {
			if r.Layer != nil && !st.HasBlob(r.Layer.Digest) {
				if err := p.c.Delete(r.Key); err != nil {
					return rep, err
				}
				rep.Records++
			}
		}
	}
	names, err := st.Names()
	if err != nil {
		return rep, err
	}
	for _, n := range names {
		if !complete(st, n.Digest) {
			rep.Broken = append(rep.Broken, n.Name)
		}
	}
	return rep, nil
}

// complete reports whether the image or index digest names loads whole:
// an index with every image it lists.
func complete(st *store.Store, digest string) bool {
	idx, ok, err := image.LoadIndex(st, digest)
	if err != nil {
		return false
	}
	if !ok {
		_, err := image.Load(st, digest)
		return err == nil
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return false
	}
	for _, d := range im.Manifests {
		if _, err := image.Load(st, d.Digest.String()); err != nil {
			return false
		}
	}
	return true
}
