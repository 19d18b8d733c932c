package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lading-build/lading/internal/atomicfile"
)

// File is one source file of a COPY or ADD.
type File struct {
	Rel  string      // path as it lands, relative to the copy destination root
	Abs  string      // where it is read from
	Info os.FileInfo // from os.Lstat; nil makes Digest call os.Lstat itself
}

// racyWindow: a file whose mtime or ctime is this close to the moment it
// was hashed may still change within the same timestamp tick without its
// stat changing, so its digest is not recorded (it is hashed again next
// time), as git does for "racily clean" index entries.
const racyWindow = time.Second

// forgetAfter: entries not used for this long are dropped on Save.
const forgetAfter = 30 * 24 * time.Hour

// statMagic starts a stat cache file; bump the digit on format changes.
const statMagic = "LADSTAT1"

// statEntry is what the stat cache remembers of a regular file.
type statEntry struct {
	dev, ino, mode, uid, gid uint64
	size, mtime, ctime       int64 // mtime and ctime in nanoseconds
	seen                     int64 // unix seconds of last use
	sum                      [sha256.Size]byte
}

// StatStats counts how Digest answered regular files: Hits from the
// recorded digest, Misses by reading the file.
type StatStats struct {
	Hits, Misses int64
}

// StatCache hashes source files, remembering the content digest of each
// regular file together with its stat (device, inode, size, mtime, ctime,
// mode, owner) so an unchanged file is never read twice. It is persisted
// in one file per build context and is safe for concurrent use.
type StatCache struct {
	path string
	// loaded is closed once entries hold what was recorded, or loadErr
	// says why they could not be read.
	loaded  chan struct{}
	loadErr error
	mu      sync.RWMutex
	entries map[string]statEntry
	dirty   bool
	hits    atomic.Int64
	misses  atomic.Int64
}

// OpenStatCache opens the stat cache of contextDir kept under dir (as
// dir/<sha256 of the absolute contextDir>). A missing or damaged file
// gives an empty cache: it only costs re-reading files. The file is read
// in the background; one that cannot be read fails the first Digest or
// DigestFiles (and is then not overwritten by Save).
func OpenStatCache(dir, contextDir string) (*StatCache, error) {
	abs, err := filepath.Abs(contextDir)
	if err != nil {
		return nil, fmt.Errorf("opening stat cache: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening stat cache: %w", err)
	}
	sum := sha256.Sum256([]byte(abs))
	c := &StatCache{
		path:    filepath.Join(dir, hex.EncodeToString(sum[:16])+".stat"),
		loaded:  make(chan struct{}),
		entries: map[string]statEntry{},
	}
	go c.load(dir)
	return c, nil
}

// load reads what was recorded, in the background: a build walks its
// context meanwhile, and the first lookup waits.
func (c *StatCache) load(dir string) {
	defer close(c.loaded)
	removeStale(dir, ".tmp-", time.Now().Add(-staleTemp))
	data, err := os.ReadFile(c.path)
	switch {
	case err == nil:
		if entries, err := decodeStat(data); err == nil {
			c.entries = entries
		}
	case !errors.Is(err, fs.ErrNotExist):
		c.loadErr = fmt.Errorf("opening stat cache: %w", err)
	}
}

// wait waits for load and returns its error.
func (c *StatCache) wait() error {
	<-c.loaded
	return c.loadErr
}

// Stats returns the hit and miss counts since OpenStatCache.
func (c *StatCache) Stats() StatStats {
	return StatStats{Hits: c.hits.Load(), Misses: c.misses.Load()}
}

// Digest returns the digest of f for FileDigest.Digest: regular files by
// content (from the recorded digest when the stat is unchanged), symlinks
// by target, directories and other files by type, mode and owner only.
func (c *StatCache) Digest(f File) (string, error) {
	if err := c.wait(); err != nil {
		return "", err
	}
	st, err := statOf(f)
	if err != nil {
		return "", err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return c.digestOther(f.Abs, st)
	}
	if sum, ok := c.lookup(f.Abs, st); ok {
		c.hits.Add(1)
		return fileDigest(st, sum[:], ""), nil
	}
	sum, err := c.hashFile(f.Abs, st)
	if err != nil {
		return "", err
	}
	c.misses.Add(1)
	return fileDigest(st, sum[:], ""), nil
}

// RegularDigest is the FileDigest.Digest of a regular file with stat
// info (from os.Lstat) and content SHA-256 sum: what Digest gives for it
// when its content is sum.
func RegularDigest(info os.FileInfo, sum []byte) (string, error) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return "", fmt.Errorf("not a regular file's stat: %v", info.Mode())
	}
	return fileDigest(st, sum, ""), nil
}

// digestOther digests a file that is not regular.
func (c *StatCache) digestOther(abs string, st *syscall.Stat_t) (string, error) {
	target := ""
	if st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		t, err := os.Readlink(abs)
		if err != nil {
			return "", fmt.Errorf("hashing %s: %w", abs, err)
		}
		target = t
	}
	return fileDigest(st, nil, target), nil
}

// statOf returns the stat of f, from f.Info when it carries one.
func statOf(f File) (*syscall.Stat_t, error) {
	if f.Info != nil {
		if st, ok := f.Info.Sys().(*syscall.Stat_t); ok {
			return st, nil
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(f.Abs, &st); err != nil {
		return nil, fmt.Errorf("hashing %s: %w", f.Abs, &fs.PathError{Op: "lstat", Path: f.Abs, Err: err})
	}
	return &st, nil
}

// lookup returns the recorded content digest of abs if its stat matches.
// Its callers (Digest, DigestFiles) have waited for the load.
func (c *StatCache) lookup(abs string, st *syscall.Stat_t) ([sha256.Size]byte, bool) {
	c.mu.RLock()
	e, ok := c.entries[abs]
	c.mu.RUnlock()
	if !ok || e != entryOf(st, e.seen, e.sum) {
		return [sha256.Size]byte{}, false
	}
	if now := time.Now().Unix(); now-e.seen > 24*3600 {
		e.seen = now
		c.mu.Lock()
		c.entries[abs] = e
		c.dirty = true
		c.mu.Unlock()
	}
	return e.sum, true
}

// entryOf builds the entry a file with stat st would have.
func entryOf(st *syscall.Stat_t, seen int64, sum [sha256.Size]byte) statEntry {
	return statEntry{
		dev: uint64(st.Dev), ino: uint64(st.Ino), mode: uint64(st.Mode),
		uid: uint64(st.Uid), gid: uint64(st.Gid), size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), seen: seen, sum: sum,
	}
}

// hashFile reads and hashes the regular file abs, whose stat was st, and
// records the digest unless the file changed meanwhile or is racy.
func (c *StatCache) hashFile(abs string, st *syscall.Stat_t) (sum [sha256.Size]byte, err error) {
	start := time.Now()
	fd, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return sum, fmt.Errorf("hashing %s: %w", abs, err)
	}
	defer fd.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fd); err != nil {
		return sum, fmt.Errorf("hashing %s: %w", abs, err)
	}
	h.Sum(sum[:0])
	var after syscall.Stat_t
	if err := syscall.Fstat(int(fd.Fd()), &after); err != nil {
		return sum, fmt.Errorf("hashing %s: %w", abs, err)
	}
	e := entryOf(st, start.Unix(), sum)
	if entryOf(&after, e.seen, sum) != e {
		return sum, fmt.Errorf("hashing %s: %w", abs, ErrFileChanged)
	}
	limit := start.Add(-racyWindow).UnixNano()
	if e.mtime < limit && e.ctime < limit {
		c.mu.Lock()
		c.entries[abs] = e
		c.dirty = true
		c.mu.Unlock()
	}
	return sum, nil
}

// ErrFileChanged is returned (wrapped) when a source file changes while it
// is being hashed.
var ErrFileChanged = errors.New("file changed while being read")

// fileDigest encodes what FileDigest.Digest covers: type, permission bits,
// owner, device number, and content digest or symlink target.
func fileDigest(st *syscall.Stat_t, content []byte, target string) string {
	var b [96]byte
	buf := append(b[:0], "lading-file/1"...)
	buf = binary.AppendUvarint(buf, uint64(st.Mode))
	buf = binary.AppendUvarint(buf, uint64(st.Uid))
	buf = binary.AppendUvarint(buf, uint64(st.Gid))
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		buf = append(buf, content...)
	case syscall.S_IFLNK:
		buf = binary.AppendUvarint(buf, uint64(len(target)))
		buf = append(buf, target...)
	case syscall.S_IFCHR, syscall.S_IFBLK:
		buf = binary.AppendUvarint(buf, uint64(st.Rdev))
	}
	sum := sha256.Sum256(buf)
	var out [7 + 2*sha256.Size]byte
	copy(out[:], "sha256:")
	hex.Encode(out[7:], sum[:])
	return string(out[:])
}

// Save writes the cache if it changed: temp file, fsync, rename. Entries
// unused for 30 days are dropped.
func (c *StatCache) Save() error {
	if c.wait() != nil {
		return nil // not read, so not overwritten
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	cutoff := time.Now().Add(-forgetAfter).Unix()
	for k, e := range c.entries {
		if e.seen < cutoff {
			delete(c.entries, k)
		}
	}
	if err := atomicfile.Write(c.path, encodeStat(c.entries), 0o600); err != nil {
		return fmt.Errorf("saving stat cache: %w", err)
	}
	c.dirty = false
	return nil
}

// encodeStat serializes entries sorted by path, followed by a sha256 of
// everything before it.
func encodeStat(entries map[string]statEntry) []byte {
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	buf := make([]byte, 0, len(paths)*(64+sha256.Size+40)+64)
	buf = append(buf, statMagic...)
	buf = binary.AppendUvarint(buf, uint64(len(paths)))
	for _, p := range paths {
		e := entries[p]
		buf = binary.AppendUvarint(buf, uint64(len(p)))
		buf = append(buf, p...)
		for _, v := range []uint64{e.dev, e.ino, e.mode, e.uid, e.gid} {
			buf = binary.AppendUvarint(buf, v)
		}
		for _, v := range []int64{e.size, e.mtime, e.ctime, e.seen} {
			buf = binary.AppendVarint(buf, v)
		}
		buf = append(buf, e.sum[:]...)
	}
	sum := sha256.Sum256(buf)
	return append(buf, sum[:]...)
}

var errBadStat = errors.New("damaged stat cache")

// decodeStat parses what encodeStat wrote.
func decodeStat(data []byte) (map[string]statEntry, error) {
	if len(data) < len(statMagic)+sha256.Size || !bytes.HasPrefix(data, []byte(statMagic)) {
		return nil, errBadStat
	}
	body := data[:len(data)-sha256.Size]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], data[len(body):]) {
		return nil, errBadStat
	}
	// Decoded straight from the bytes: a stat cache holds an entry per
	// context file, and this runs before every build.
	d := statDecoder{buf: body[len(statMagic):]}
	n := d.uvarint()
	if d.bad || n > uint64(len(body)) {
		return nil, errBadStat
	}
	entries := make(map[string]statEntry, n)
	for range n {
		l := d.uvarint()
		if d.bad || l > uint64(len(d.buf)) {
			return nil, errBadStat
		}
		p := string(d.buf[:l])
		d.buf = d.buf[l:]
		var e statEntry
		for _, v := range []*uint64{&e.dev, &e.ino, &e.mode, &e.uid, &e.gid} {
			*v = d.uvarint()
		}
		for _, v := range []*int64{&e.size, &e.mtime, &e.ctime, &e.seen} {
			*v = d.varint()
		}
		if d.bad || len(d.buf) < len(e.sum) {
			return nil, errBadStat
		}
		copy(e.sum[:], d.buf)
		d.buf = d.buf[len(e.sum):]
		entries[p] = e
	}
	return entries, nil
}

// statDecoder reads varints from buf; bad is set, and zeros returned, once
// one is malformed.
type statDecoder struct {
	buf []byte
	bad bool
}

func (d *statDecoder) uvarint() uint64 { return next(d, binary.Uvarint) }
func (d *statDecoder) varint() int64   { return next(d, binary.Varint) }

func next[T uint64 | int64](d *statDecoder, read func([]byte) (T, int)) T {
	v, n := read(d.buf)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// hashWorkers is how many files DigestFiles reads at once.
const hashWorkers = 4

// DigestFiles digests files through c and returns them sorted by Rel
// path (stably). Files whose stat is unchanged are answered from c (in
// parallel chunks, as lstat dominates when File.Info is nil); the others
// are read by a small pool of workers.
func DigestFiles(ctx context.Context, c *StatCache, files []File) ([]FileDigest, error) {
	if err := c.wait(); err != nil {
		return nil, err
	}
	out := make([]FileDigest, len(files))
	const chunk = 2048
	nchunks := (len(files) + chunk - 1) / chunk
	missed := make([][]int, nchunks)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(goruntime.GOMAXPROCS(0))
	for n := range nchunks {
		g.Go(func() error {
			lo, hi := n*chunk, min((n+1)*chunk, len(files))
			var err error
			missed[n], err = c.fastPath(gctx, files[lo:hi], out[lo:hi], lo)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, wrapCanceled(err)
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(hashWorkers)
	for _, m := range missed {
		for _, i := range m {
			if gctx.Err() != nil {
				break
			}
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				d, err := c.Digest(files[i])
				out[i].Digest = d
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, wrapCanceled(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, wrapCanceled(err)
	}
	slices.SortStableFunc(out, compareFiles)
	return out, nil
}

// fastPath digests the files it can without reading them into out and
// returns the indexes (offset by base) of the regular files it could not.
func (c *StatCache) fastPath(ctx context.Context, files []File, out []FileDigest, base int) ([]int, error) {
	var misses []int
	for i, f := range files {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out[i].Path = f.Rel
		st, err := statOf(f)
		if err != nil {
			return nil, err
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			if out[i].Digest, err = c.digestOther(f.Abs, st); err != nil {
				return nil, err
			}
			continue
		}
		if sum, ok := c.lookup(f.Abs, st); ok {
			c.hits.Add(1)
			out[i].Digest = fileDigest(st, sum[:], "")
			continue
		}
		misses = append(misses, base+i)
	}
	return misses, nil
}

// wrapCanceled adds context to a cancellation error; other errors already
// name their file.
func wrapCanceled(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("hashing sources: %w", err)
	}
	return err
}
