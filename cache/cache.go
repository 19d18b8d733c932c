package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lading-build/lading/internal/atomicfile"
)

// Errors, for errors.Is.
var (
	// ErrInvalidKey marks a key or parent that is not "sha256:<64 hex>".
	ErrInvalidKey = errors.New("invalid cache key")
	// ErrCorrupt marks a record file that did not parse completely.
	ErrCorrupt = errors.New("corrupt cache record")
)

// recordMagic starts the header line of a record file.
const recordMagic = "lading-cache-record"

// recordVersion is the record file format version; records whose layer
// is Unwritten are version unwrittenVersion, which older readers reject
// (they would take the missing layer for an empty one).
const (
	recordVersion    = 1
	unwrittenVersion = 2
)

// staleTemp is how old a file under tmp/ must be before Open removes it as
// a leftover of a killed process.
const staleTemp = time.Hour

// LayerDesc describes the layer blob a step produced (kept in the store).
type LayerDesc struct {
	Digest    string `json:"digest"`    // of the compressed blob
	DiffID    string `json:"diffID"`    // of the uncompressed tar
	Size      int64  `json:"size"`      // of the compressed blob
	MediaType string `json:"mediaType"` // e.g. application/vnd.oci.image.layer.v1.tar+gzip
}

// Record is the cached result of one build step.
type Record struct {
	Key      string     `json:"key"`
	Parent   string     `json:"parent,omitempty"` // key of the previous step, "" for a stage base
	Snapshot string     `json:"snapshot"`         // committed snapshot holding the step's rootfs
	Layer    *LayerDesc `json:"layer,omitempty"`  // nil when the step changed no files
	// Unwritten says the step's layer blob was never written (no output
	// needed it): Layer is nil, and the layer is the diff of Snapshot,
	// made when a later build needs it.
	Unwritten bool `json:"unwritten,omitempty"`
	// Split is the path whose entries the step's layer holds in a gzip
	// member of their own (a COPY's destination), so a layer written later
	// from Snapshot comes out as the step's would have.
	Split   string    `json:"split,omitempty"`
	Inputs  Inputs    `json:"inputs,omitempty"` // for Explain
	Stage   string    `json:"stage,omitempty"`  // human text for explain and du
	Step    string    `json:"step,omitempty"`
	Created time.Time `json:"created"`
	// LastUsed is when the record was last written or returned by Get; it
	// lives in the record file's mtime, not in the file.
	LastUsed time.Time `json:"-"`
}

// Cache is the build cache under one directory (--root/cache). It is safe
// for concurrent use by goroutines and by processes sharing the directory.
//
// Layout:
//
//	records/<hex>           one record per key, written atomically
//	parents/<hex>/<hex>     index: records by parent key ("root" for "")
//	locks/<hex>             per-key lock files (Lock)
//	stat/                   stat caches of build contexts (StatDir)
//	tmp/                    in-flight writes
type Cache struct {
	dir string
}

// Open opens the cache in dir, creating it when missing, and removes temp
// files that killed processes left behind.
func Open(dir string) (*Cache, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	c := &Cache{dir: abs}
	// Records name private layers: the owner's only, also in caches of
	// older versions.
	if err := atomicfile.Private(abs, "records"); err != nil {
		return nil, fmt.Errorf("opening cache: %w", err)
	}
	for _, d := range []string{"records", "parents", "locks", "stat", "tmp"} {
		if err := os.MkdirAll(c.path(d), 0o700); err != nil {
			return nil, fmt.Errorf("opening cache: %w", err)
		}
	}
	removeStale(c.path("tmp"), "", time.Now().Add(-staleTemp))
	return c, nil
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.dir }

// StatDir is the directory to pass to OpenStatCache.
func (c *Cache) StatDir() string { return c.path("stat") }

func (c *Cache) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

// keyHex validates a key and returns its hex part.
func keyHex(key string) (string, error) {
	h, ok := bytes.CutPrefix([]byte(key), []byte("sha256:"))
	if !ok || len(h) != 2*sha256.Size {
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
		}
	}
	return string(h), nil
}

// parentDir returns the index directory of records with this parent.
func (c *Cache) parentDir(parent string) (string, error) {
	if parent == "" {
		return c.path("parents", "root"), nil
	}
	h, err := keyHex(parent)
	if err != nil {
		return "", err
	}
	return c.path("parents", h), nil
}

// Get returns the record of key. Only a record file that parses
// completely and names key is returned; anything else is a miss. A hit
// marks the record used now (its file's mtime, without fsync) for Prune.
func (c *Cache) Get(key string) (*Record, bool) {
	h, err := keyHex(key)
	if err != nil {
		return nil, false
	}
	p := c.path("records", h)
	r, err := readRecord(p)
	if err != nil || r.Key != key {
		return nil, false
	}
	now := time.Now()
	if os.Chtimes(p, now, now) == nil {
		r.LastUsed = now
	}
	return r, true
}

// Put stores r under r.Key, replacing any record there, and indexes it
// under r.Parent. The record file is written atomically (temp file, fsync,
// rename, fsync of the directory). Created defaults to now.
func (c *Cache) Put(r *Record) error {
	h, err := keyHex(r.Key)
	if err != nil {
		return fmt.Errorf("storing cache record: %w", err)
	}
	pdir, err := c.parentDir(r.Parent)
	if err != nil {
		return fmt.Errorf("storing cache record %s: parent: %w", r.Key, err)
	}
	if r.Created.IsZero() {
		r.Created = time.Now().UTC()
	}
	data, err := encodeRecord(r)
	if err != nil {
		return fmt.Errorf("storing cache record %s: %w", r.Key, err)
	}
	if err := atomicfile.WriteIn(c.path("tmp"), c.path("records", h), data, 0o600); err != nil {
		return fmt.Errorf("storing cache record %s: %w", r.Key, err)
	}
	// The index only helps Explain find candidates; a missing or stale
	// entry is harmless, so it needs no fsync.
	if err := addIndex(pdir, h); err != nil {
		return fmt.Errorf("indexing cache record %s: %w", r.Key, err)
	}
	r.LastUsed = time.Now()
	return nil
}

// addIndex creates the empty file pdir/name, retrying when a concurrent
// Delete removed the (then empty) directory in between.
func addIndex(pdir, name string) (err error) {
	for range 3 {
		if err = os.MkdirAll(pdir, 0o700); err != nil {
			return err
		}
		var f *os.File
		f, err = os.OpenFile(filepath.Join(pdir, name), os.O_CREATE|os.O_WRONLY, 0o600)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		return f.Close()
	}
	return err
}

// Delete removes the record of key (and its index entry); a missing
// record is not an error. Use it when a record's snapshot turned out to be
// gone.
func (c *Cache) Delete(key string) error {
	h, err := keyHex(key)
	if err != nil {
		return fmt.Errorf("deleting cache record: %w", err)
	}
	p := c.path("records", h)
	r, _ := readRecord(p)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting cache record %s: %w", key, err)
	}
	if err := atomicfile.SyncDir(c.path("records")); err != nil {
		return fmt.Errorf("deleting cache record %s: %w", key, err)
	}
	if r != nil {
		if pdir, err := c.parentDir(r.Parent); err == nil {
			_ = os.Remove(filepath.Join(pdir, h))
			_ = os.Remove(pdir) // only succeeds when empty
		}
	}
	return nil
}

// Records returns every readable record, in no particular order; damaged
// record files are skipped.
func (c *Cache) Records() ([]*Record, error) {
	entries, err := os.ReadDir(c.path("records"))
	if err != nil {
		return nil, fmt.Errorf("listing cache records: %w", err)
	}
	var out []*Record
	for _, e := range entries {
		r, err := readRecord(c.path("records", e.Name()))
		if err != nil {
			continue
		}
		if h, err := keyHex(r.Key); err != nil || h != e.Name() {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// encodeRecord returns a record file: the header line
// "lading-cache-record <version> <json length> <files length> <sha256>",
// the record as JSON, then the file lists of its inputs packed (each as
// uvarint length and packFiles bytes, in input order). The lengths and the
// sha256 of everything after the header catch a file cut short or
// damaged anywhere.
func encodeRecord(r *Record) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var files []byte
	for _, in := range r.Inputs {
		if in.IsFiles {
			packed := packFiles(in.Files)
			files = binary.AppendUvarint(files, uint64(len(packed)))
			files = append(files, packed...)
		}
	}
	h := sha256.New()
	h.Write(body)
	h.Write(files)
	version := recordVersion
	if r.Unwritten {
		version = unwrittenVersion
	}
	head := fmt.Sprintf("%s %d %d %d %x\n", recordMagic, version, len(body), len(files), h.Sum(nil))
	out := make([]byte, 0, len(head)+len(body)+len(files))
	return append(append(append(out, head...), body...), files...), nil
}

// readRecord reads and verifies a record file; LastUsed is its mtime.
func readRecord(path string) (*Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() > 1<<30 {
		return nil, fmt.Errorf("%s: %w: too large", path, ErrCorrupt)
	}
	data := make([]byte, info.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	}
	r, err := decodeRecord(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.LastUsed = info.ModTime()
	return r, nil
}

// decodeRecord parses what encodeRecord wrote.
func decodeRecord(data []byte) (*Record, error) {
	head, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no header", ErrCorrupt)
	}
	f := strings.Fields(string(head))
	if len(f) != 5 || f[0] != recordMagic || (f[1] != strconv.Itoa(recordVersion) && f[1] != strconv.Itoa(unwrittenVersion)) {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	nbody, err1 := strconv.Atoi(f[2])
	nfiles, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil || nbody < 0 || nfiles < 0 || nbody+nfiles != len(rest) {
		return nil, fmt.Errorf("%w: length", ErrCorrupt)
	}
	sum := sha256.Sum256(rest)
	if hex.EncodeToString(sum[:]) != f[4] {
		return nil, fmt.Errorf("%w: checksum", ErrCorrupt)
	}
	var r Record
	if err := json.Unmarshal(rest[:nbody], &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if _, err := keyHex(r.Key); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	files := rest[nbody:]
	for i := range r.Inputs {
		if !r.Inputs[i].IsFiles {
			continue
		}
		n, l := binary.Uvarint(files)
		if l <= 0 || n > uint64(len(files)-l) {
			return nil, fmt.Errorf("%w: file list", ErrCorrupt)
		}
		list, err := unpackFiles(files[l : l+int(n)])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		r.Inputs[i].Files = list
		files = files[l+int(n):]
	}
	if len(files) != 0 {
		return nil, fmt.Errorf("%w: trailing data", ErrCorrupt)
	}
	return &r, nil
}

// removeStale deletes files in dir whose names start with prefix and that
// were last modified before cutoff. Errors are ignored: a leftover temp
// file is harmless.
func removeStale(dir, prefix string, cutoff time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
