// Package remotecache shares lading's per-step build cache between
// machines through a directory (type=local) or a registry
// (type=registry), the way --cache-to and --cache-from do.
//
// The unit that travels is an Entry: one step's cache key, its parent's
// key, the layer blob the step produced (or none) and its creation time.
// Layer blobs travel as they are in the store, byte for byte, so a step
// restored from a remote cache yields the same image digest as the step
// built locally.
//
// Lifecycle, as the builder uses it:
//
//	sp, err := remotecache.ParseSpec("type=registry,ref=127.0.0.1:5000/app:cache")
//	src, err := remotecache.OpenSource(ctx, sp, opts) // reads the index once; a missing cache is empty
//	// local cache miss for step key k:
//	if e, ok := src.Lookup(k); ok {
//	        if e.Layer != nil {
//	                err = src.FetchLayer(ctx, st, *e.Layer) // into the store, digest verified
//	                // apply the blob on the parent snapshot instead of running the step
//	        }
//	}
//	// after the build:
//	sink, err := remotecache.OpenSink(sp, opts)
//	err = sink.Export(ctx, st, entries) // merged with what is already there
//
// A directory cache is DIR/index.json ({"version":1,"entries":[...]})
// plus DIR/blobs/sha256/<hex>. A registry cache is one OCI image
// manifest whose layers are the entries' layer blobs and whose config
// carries the entries under the top-level field "lading.cache.v1".
package remotecache
