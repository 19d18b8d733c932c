// Package gc provides garbage collection, disk usage and consistency
// checks for a whole lading root: the blobs of the store, the snapshots of
// both snapshotters (overlay and native), the build cache of each, and the
// RUN --mount=type=cache directories.
//
// Everything that writes data nothing references yet (a build, a pull, a
// load, a cache import) holds the store's collection lock shared
// (store.Hold) until it is referenced; Prune and Check take it exclusively
// (store.Collect), so they never delete what a running command is about
// to use. Usage takes no lock: its numbers are a snapshot of a moving
// root.
//
// What Prune removes, in order, holding the lock:
//
//  1. cache records of each snapshotter (all, least recently used first
//     down to Options.KeepStorage, or those unused for Options.Until),
//     each record before its snapshot;
//
//  2. every snapshot no remaining record uses, directly or as an ancestor
//     (base image layers no cached step builds on, leftovers of killed
//     builds);
//
//  3. with Options.Mounts (or MountIDs, or All), cache mounts;
//
//  4. every blob that neither a named image nor a remaining record uses,
//     and the temp files of blobs killed processes were writing.
//
//     st, err := store.Open(root)
//     stats, err := gc.Prune(ctx, st, gc.Options{KeepStorage: -1})
//     u, err := gc.DiskUsage(ctx, st)
//     rep, err := gc.Check(ctx, st)
package gc
