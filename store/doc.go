// Package store provides lading's content-addressed state under --root:
// blobs named by their sha256 digest, the image names users tag (what
// `lading images` lists), named file locks that let several lading
// processes share one root, the store-wide collection lock (Hold, shared,
// by everything that writes unreferenced data; Collect, exclusive, by the
// garbage collector in package gc), and the directories of cache mounts.
//
// Layout of a root (mode 0700; blobs, names and records 0600):
//
//	blobs/sha256/<hex>   immutable content, named by the sha256 of its bytes
//	names.json           image names -> manifest digests
//	locks/<name>         lock files for Lock; locks/gc for Hold and Collect
//	cache-mounts/<hash>/ RUN --mount=type=cache directories (CacheMountDir)
//	tmp/                 in-flight writes; stale ones are removed by Open
//
// Other packages keep their own directories beside these: snapshots/
// (package snapshot) and cache/, cache-native/ (package cache).
//
// Every write is atomic: content goes to a temporary file under tmp/, is
// fsynced, and is renamed into place, so a process killed at any moment
// leaves either the old state or the new one, never a torn file.
//
// Lifecycle of a blob:
//
//	w, err := s.NewBlobWriter()      // temp file under tmp/
//	defer w.Close()                  // discards the temp file unless committed
//	_, err = io.Copy(w, r)           // hashed while written
//	dgst, size, err := w.Commit("")  // fsync + rename to blobs/sha256/<hex>
//	r, err := s.OpenVerified(dgst, size) // hashed as it streams out
//
// Every blob that leaves the store is read through OpenVerified: a blob
// whose bytes do not match its digest fails the read at its end with
// ErrCorruptBlob and is removed, so the next build re-creates it.
//
// Digests are strings "sha256:<64 lowercase hex>"; every method that takes
// one validates it first, so a digest can never name a path outside blobs/.
package store
