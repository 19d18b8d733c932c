// Package snapshot provides copy-on-write filesystem snapshots (overlayfs
// and plain copy), and the conversion between a committed snapshot and an
// OCI layer tar (Diff) and back (Apply).
//
// The Snapshotter vocabulary follows containerd's: an *active* snapshot is
// writable and addressed by a key; Commit turns it into a *committed*
// snapshot addressed by a name, which can be the parent of further
// snapshots; a *view* is a read-only active snapshot. Keys and names share
// one namespace.
//
// Lifecycle of one build step:
//
//	mounts, err := sn.Prepare(ctx, "active-1", "base")   // writable, on top of committed "base"
//	err = snapshot.MountAll(mounts, dir)                 // caller mounts (or hands mounts to a container)
//	... change files under dir ...
//	err = snapshot.UnmountAll(dir)
//	err = sn.Commit(ctx, "step-1", "active-1")           // "active-1" is gone, "step-1" is committed
//	err = sn.Diff(ctx, "step-1", w, snapshot.DiffOptions{}) // tar of what "step-1" changed over "base"
//	err = sn.Remove(ctx, "step-1")                       // once nothing builds on it any more
//
// # Implementations
//
// NewOverlay is the default: Prepare and Commit only write metadata, a
// snapshot's mounts are an overlay of its committed ancestors' directories
// (or a bind mount when it has no parent), and Diff walks only the upper
// directory, so its cost follows the size of the change. NewNative copies the
// parent's tree on Prepare and compares trees on Diff; use it where
// OverlaySupported reports that overlayfs cannot be used on the state
// directory (for example when that directory is itself on overlayfs).
//
// Both keep their state under one directory:
//
//	lock                 flock(2) serializing metadata changes across processes
//	names/HASH           index: sha256 of a key or name -> snapshot id
//	snapshots/ID/meta    authoritative record: name, kind, parent, ancestor ids
//	snapshots/ID/fs      the snapshot's files (overlay: its upper directory)
//	snapshots/ID/work    overlay work directory
//	trash/               snapshots being deleted
//
// Every metadata file is written to a temporary name, synced and renamed.
//
// # Mounting
//
// Snapshotters never mount anything themselves; they return []Mount, which
// MountAll mounts at a directory and UnmountAll removes. Overlay mounts with
// many layers are made with the mount API (fsopen and one "lowerdir+"
// parameter per layer, Linux 6.8 and later), so stacks deeper than the
// one-page limit of the classic "lowerdir=a:b:c" option string still mount.
//
// # Layers
//
// Diff writes uncompressed, deterministic OCI layer tars: entries in
// depth-first order with the names in each directory sorted bytewise (a
// directory before its children, an opaque marker right after its
// directory), clean headers (no user or group names, no access or change
// times, mtimes in whole seconds and clamped to DiffOptions.Epoch, PAX
// records only for extended attributes), hardlinks inside the layer as links
// to the first path written, and deletions as ".wh." whiteouts. The root
// directory itself is never written.
//
// ApplyDir and Snapshotter.Apply unpack such tars. A layer is untrusted
// input: every path is resolved inside the root with openat2(2) and
// RESOLVE_NO_SYMLINKS on a path the applier has checked component by
// component. The rules:
//
//   - absolute names are made relative to the root ("/etc/passwd" is
//     "etc/passwd"); names that escape after cleaning ("../x") are rejected;
//   - a "." or "/" entry may only be a directory (it sets the root's
//     metadata);
//   - an entry whose parent path passes through a symlink follows the link
//     only when its target is relative and stays inside the root; writing
//     through an absolute or escaping symlink is rejected, also when the
//     link was created earlier in the same layer;
//   - hardlink targets follow the same rules and may not be symlinks whose
//     target is absolute or escapes;
//   - whiteout names must name a real entry (".wh.", ".wh..", ".wh..." are
//     rejected); whiteouts only delete what lower layers made, never what
//     the same layer wrote; aufs metadata (".wh..wh.*" other than the
//     opaque marker) is skipped;
//   - trusted.overlay.* extended attributes in a layer are ignored.
//
// Rejected entries return an error wrapping ErrUnsafeLayer and nothing is
// written outside the root.
package snapshot
