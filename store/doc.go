// Package store provides lading's content-addressed state under --root:
// blobs named by their sha256 digest, the image names users tag (what
// `lading images` lists), and named file locks that let several lading
// processes share one root.
//
// Layout of a root:
//
//	blobs/sha256/<hex>   immutable content, named by the sha256 of its bytes
//	names.json           image names -> manifest digests
//	locks/<name>         lock files for Lock
//	tmp/                 in-flight writes; stale ones are removed by Open
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
//	f, err := s.OpenBlob(dgst)
//
// Digests are strings "sha256:<64 lowercase hex>"; every method that takes
// one validates it first, so a digest can never name a path outside blobs/.
package store
