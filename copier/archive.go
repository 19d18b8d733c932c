package copier

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// archive is a tar stream positioned after its first header.
type archive struct {
	tr    *tar.Reader
	first *tar.Header
	close func()
}

// openArchive reports whether r holds a tar archive, uncompressed or
// compressed with gzip, bzip2, xz or zstd, judging by its content as Docker
// does: known magic bytes, then a valid first tar header.
func openArchive(r io.Reader) (*archive, bool) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(6)
	var dec io.Reader = br
	closeFn := func() {}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, false
		}
		dec, closeFn = z, func() { z.Close() }
	case bytes.HasPrefix(magic, []byte("BZh")):
		dec = bzip2.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, false
		}
		dec = z
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, false
		}
		dec, closeFn = z, z.Close
	}
	tr := tar.NewReader(dec)
	hdr, err := tr.Next()
	if err != nil {
		closeFn()
		return nil, false
	}
	return &archive{tr: tr, first: hdr, close: closeFn}, true
}

// extractFile extracts f (named what in errors) into the destination
// directory when it is an archive; otherwise it rewinds f and reports
// false.
func (o *op) extractFile(ctx context.Context, f *os.File, what string) (bool, error) {
	a, ok := openArchive(f)
	if !ok {
		_, err := f.Seek(0, io.SeekStart)
		return false, err
	}
	defer a.close()
	// BuildKit creates an archive's destination 0755 whatever --chmod says.
	dir, err := o.dst.mkdirAll(o.dest, newDir{owner: o.created.owner})
	if err != nil {
		return true, err
	}
	t := &tree{root: dir}
	defer t.close()
	opts := extractOptions{owner: o.chown, chmod: o.chmod, devices: true}
	if err := extract(ctx, a, t, opts); err != nil {
		return true, fmt.Errorf("extracting %s to %s: %w", what, o.dest, err)
	}
	return true, nil
}

// extractOptions adjust extract.
type extractOptions struct {
	owner   *owner // overrides the owners in the archive (--chown)
	chmod   chmod  // changes modes of files and directories (--chmod)
	devices bool   // create device nodes and fifos (else skip them)
	maxSize int64  // refuse larger files (0 = no limit)
}

// ctxReader stops reading once its context is done, so that cancellation
// interrupts a long entry.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// extract writes the entries of a into t. Every name and hard-link target
// is resolved inside t, whatever "..", absolute names or symlinks (from the
// archive or already in t) say, so nothing is written outside t. Whiteout
// files are ordinary files here.
func extract(ctx context.Context, a *archive, t *tree, opts extractOptions) error {
	type dirMeta struct {
		rel string
		m   meta
	}
	var dirs []dirMeta
	hdr := a.first
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m := headerMeta(hdr, opts)
		if opts.maxSize > 0 && hdr.Size > opts.maxSize {
			return fmt.Errorf("%s: %d bytes is over the limit", hdr.Name, hdr.Size)
		}
		rel, err := extractEntry(ctxReader{ctx, a.tr}, hdr, t, m, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if rel != "" {
			dirs = append(dirs, dirMeta{rel, m})
		}
		hdr, err = a.tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
	}
	// Directory modes and times last, deepest first: writing inside a
	// directory changes its mtime.
	for i := len(dirs) - 1; i >= 0; i-- {
		d, err := t.openDir(dirs[i].rel)
		if err != nil {
			return fmt.Errorf("%s: %w", dirs[i].rel, err)
		}
		err = finishDir(d, dirs[i].m)
		d.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", dirs[i].rel, err)
		}
	}
	return nil
}

func headerMeta(hdr *tar.Header, opts extractOptions) meta {
	m := meta{
		owner: owner{hdr.Uid, hdr.Gid},
		mode:  uint32(hdr.Mode) & 0o7777,
		mtime: hdr.ModTime,
	}
	if opts.owner != nil {
		m.owner = *opts.owner
	}
	if opts.chmod != nil && hdr.Typeflag != tar.TypeSymlink {
		m.mode = opts.chmod(m.mode, hdr.Typeflag == tar.TypeDir)
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			m.xattrs = append(m.xattrs, xattr{name, []byte(v)})
		}
	}
	return m
}

// cleanName makes an archive name relative to the extraction root: ""
// for the root itself.
func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// extractEntry writes one entry; for a directory it returns its clean name,
// whose mode and mtime are set at the end.
func extractEntry(r io.Reader, hdr *tar.Header, t *tree, m meta, opts extractOptions) (string, error) {
	name := cleanName(hdr.Name)
	if name == "" || hdr.Typeflag == tar.TypeXGlobalHeader {
		return "", nil
	}
	if strings.ContainsRune(name, 0) || strings.ContainsRune(hdr.Linkname, 0) {
		return "", errors.New("name contains a NUL byte")
	}
	implied := newDir{}
	if opts.owner != nil {
		implied.owner = *opts.owner
	}
	dir, err := t.mkdirAll(path.Dir(name), implied)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	base := path.Base(name)
	switch hdr.Typeflag {
	case tar.TypeDir:
		d, err := makeDir(dir, base, m, true)
		if err != nil {
			return "", err
		}
		d.Close()
		return name, nil
	case tar.TypeReg, tar.TypeGNUSparse:
		return "", writeFile(dir, base, r, m)
	case tar.TypeSymlink:
		return "", makeSymlink(dir, base, hdr.Linkname, m)
	case tar.TypeLink:
		target := cleanName(hdr.Linkname)
		if target == "" {
			return "", errors.New("hard link to the extraction root")
		}
		old, err := t.openDir(path.Dir(target))
		if err != nil {
			return "", fmt.Errorf("hard link target %s: %w", hdr.Linkname, err)
		}
		defer old.Close()
		return "", makeLink(old, path.Base(target), dir, base)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if !opts.devices {
			return "", nil
		}
		typ := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		return "", makeNode(dir, base, typ, dev, m)
	}
	return "", nil // other types (e.g. vendor extensions) are skipped
}

// ExtractArchive unpacks f into the existing directory dir when f holds a
// tar archive (uncompressed, gzip, bzip2, xz or zstd) and reports true;
// otherwise it rewinds f and reports false. Names resolve inside dir, as
// for ADD; owners come from the archive, device nodes are skipped.
func ExtractArchive(ctx context.Context, f *os.File, dir string) (bool, error) {
	a, ok := openArchive(f)
	if !ok {
		_, err := f.Seek(0, io.SeekStart)
		return false, err
	}
	defer a.close()
	t, err := openTree(dir)
	if err != nil {
		return true, err
	}
	defer t.close()
	if err := extract(ctx, a, t, extractOptions{}); err != nil {
		return true, fmt.Errorf("extracting archive: %w", err)
	}
	return true, nil
}
