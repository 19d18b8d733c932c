// Package cache provides lading's build cache: content-addressed records of
// build steps, kept under --root/cache and shared by every lading process
// using that root, with no daemon.
//
// A step's key is the sha256 of a versioned, length-prefixed encoding of
// its parent's key, the canonical instruction, and every value the step
// reads: expanded ARG and ENV values, SHELL, USER, WORKDIR, network,
// mounts, and for COPY and ADD the digest of each selected source file
// (path, type, mode, owner, content or symlink target; never timestamps).
// A stage's base step has parent "" and the base image's digest as field
// FieldBase, so a moved tag changes every key of the stage.
//
// Source files are digested through a StatCache, which remembers each
// regular file's content digest with its device, inode, size, mtime,
// ctime, mode and owner, so an unchanged build context is not read again.
//
// Lifecycle of one build against the cache, as the builder runs it:
//
//	c, err := cache.Open(filepath.Join(root, "cache"))
//	release, err := st.Hold(ctx)         // the store's lock, shared: keeps the collector away
//	defer release()
//	sc, err := cache.OpenStatCache(c.StatDir(), contextDir)
//	defer sc.Save()                      // atomic; only when something new was hashed
//
//	parent := ""
//	// FROM alpine@sha256:...
//	k := cache.NewKey(parent).Add(cache.FieldBase, baseDigest)
//	// ... then, for each step:
//	files, err := cache.DigestFiles(ctx, sc, sources) // COPY/ADD only
//	k = cache.NewKey(parent).
//		Add(cache.FieldKind, "COPY").
//		Add(cache.FieldInstruction, "COPY src/ /app/").
//		Add(cache.FieldEnv, "PATH=/bin\x00HOME=/root").
//		Add("user", "app").
//		AddFiles(cache.FieldFiles, files)
//	key := k.Sum()
//	rec, ok := c.Get(key)
//	if !ok {
//		unlock, err := c.Lock(ctx, key) // another build may be running this very step
//		if rec, ok = c.Get(key); !ok {  // it finished while we waited: use its result
//			if explain && firstMissInStage {
//				for _, line := range c.Explain(parent, k.Inputs()) {
//					fmt.Println(line) // e.g. `file src/main.go changed`
//				}
//			}
//			// run the step, commit its snapshot (named after key), diff it
//			// to a layer blob in the store, then:
//			rec = &cache.Record{Key: key, Parent: parent, Snapshot: name,
//				Layer: layer, Inputs: k.Inputs(), Stage: "build", Step: "COPY src/ /app/"}
//			err = c.Put(rec) // only after the snapshot and the blob are durable
//		}
//		unlock()
//	}
//	parent = key // and the next step starts from rec.Snapshot
//
// `lading du` is Usage; `lading prune` (package gc, holding the store's
// collection lock) is Prune(ctx, Policy{Keep: -1}, ...) or, with
// --keep-storage SIZE, Prune(ctx, Policy{Keep: SIZE}, ...): least recently used records
// go first, a record's dependents before it, each record file deleted
// before its snapshot is removed.
//
// Durability: every record is one file written to a temp name, fsynced and
// renamed, and carries a header with its length and sha256, so a process
// killed at any moment leaves either no record or a whole one, and Get
// never trusts a damaged file. Because a record is Put only after its
// snapshot and layer exist, and Prune deletes it before removing them, a
// record never points at missing data except when something outside the
// cache removed it; a builder that finds a record's snapshot gone calls
// Delete and treats the step as a miss.
package cache
