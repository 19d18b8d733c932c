package snapshot

import (
	"context"
	"errors"
	"io"
)

// Kind says what state a snapshot is in.
type Kind int

const (
	KindUnknown Kind = iota
	KindView
	KindActive
	KindCommitted
)

// Errors returned by Snapshotter methods, for errors.Is.
var (
	ErrNotFound = errors.New("snapshot not found")
	ErrExists   = errors.New("snapshot already exists")
	// ErrUnsafeLayer marks a layer entry that would reach outside the root.
	ErrUnsafeLayer = errors.New("unsafe layer entry")
	// ErrInUse marks a snapshot that cannot be removed because other
	// snapshots have it as parent.
	ErrInUse = errors.New("snapshot in use")
	// ErrWrongKind marks an operation on a snapshot of the wrong kind, such
	// as committing a view or diffing an active snapshot.
	ErrWrongKind = errors.New("wrong snapshot kind")
)

// Info describes a snapshot.
type Info struct {
	Name   string // key of an active snapshot or name of a committed one
	Parent string // committed parent name, "" for a root snapshot
	Kind   Kind
}

// Mount is one filesystem mount that, applied at a target directory, shows
// the contents of a snapshot. Type "bind" with Source a directory is what a
// plain-copy snapshot returns; "overlay" is what the overlay one returns.
type Mount struct {
	Type    string
	Source  string
	Options []string
}

// Snapshotter manages snapshots under one directory. Implementations are
// safe for concurrent use by several goroutines and several processes that
// share the directory.
type Snapshotter interface {
	// Prepare creates a writable snapshot key on top of the committed
	// snapshot parent ("" for an empty one) and returns its mounts.
	Prepare(ctx context.Context, key, parent string) ([]Mount, error)
	// View is Prepare for a read-only snapshot.
	View(ctx context.Context, key, parent string) ([]Mount, error)
	// Mounts returns the mounts of an active snapshot or view.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Commit turns the active snapshot key into the committed snapshot name.
	Commit(ctx context.Context, name, key string) error
	// Stat describes a snapshot.
	Stat(ctx context.Context, key string) (Info, error)
	// Remove deletes a snapshot that no other snapshot has as parent.
	Remove(ctx context.Context, key string) error
	// Diff writes an uncompressed OCI layer tar of the changes the
	// committed snapshot name makes over its parent: sorted entries,
	// deletions as ".wh." whiteouts, replaced directories as opaque.
	Diff(ctx context.Context, name string, w io.Writer, opts DiffOptions) error
	// Apply unpacks an uncompressed OCI layer tar onto the active snapshot
	// key, honoring whiteouts; entries that would escape the snapshot are
	// rejected with an error wrapping ErrUnsafeLayer.
	Apply(ctx context.Context, key string, r io.Reader) error
	// Walk calls fn with every snapshot (active, view and committed).
	Walk(ctx context.Context, fn func(Info) error) error
	// Usage returns the disk space, in bytes, the snapshot itself takes
	// (its own files, not its parents').
	Usage(ctx context.Context, key string) (int64, error)
	// Close releases resources.
	Close() error
}

// DiffOptions tune Diff.
type DiffOptions struct {
	// Epoch, when non-nil, clamps every mtime in the layer to at most
	// *Epoch seconds (SOURCE_DATE_EPOCH).
	Epoch *int64
	// Exclude lists paths (absolute, inside the snapshot) that never go
	// into a layer, e.g. mount points the runtime created.
	Exclude []string
	// Split, when not "", is an absolute path inside the snapshot (a
	// COPY's destination) whose entries form a part of the layer of their
	// own, at its start: they are written first, then Cut is called
	// (when there were any), then the other entries (the destination's
	// parent directories) and the tar's end follow. Readers do not need
	// a directory's entry before what is in it. The part's bytes depend
	// only on what is at Split, so an identical part of an earlier layer
	// can be copied instead of written (see OmitSplit).
	Split string
	Cut   func() error
	// OmitSplit (with Split, and only for snapshots Diff writes from an
	// overlay upper directory) leaves out the entries at and below Split,
	// which the caller wrote before (an earlier layer's identical part).
	// Diff fails with ErrSplit when nothing is at Split.
	OmitSplit bool
}

// ErrSplit is returned by Diff with DiffOptions.OmitSplit when the split
// part cannot be left out: nothing is at Split.
var ErrSplit = errors.New("the layer's split part is missing")
