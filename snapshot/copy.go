package snapshot

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// copier copies trees between directories the snapshotter owns, keeping
// types, owners, modes, xattrs, hardlinks and times.
type copier struct {
	ctx   context.Context
	links map[[2]uint64]string // source inode -> first destination path
}

// copyTree copies the contents and metadata of directory src into the
// existing directory dst.
func copyTree(ctx context.Context, src, dst string) error {
	c := &copier{ctx: ctx, links: map[[2]uint64]string{}}
	st, err := lstat(src)
	if err != nil {
		return err
	}
	if err := c.copyDir(src, dst); err != nil {
		return err
	}
	return copyMeta(src, dst, st)
}

func (c *copier) copyDir(src, dst string) error {
	names, err := readDirNames(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		s, d := filepath.Join(src, n), filepath.Join(dst, n)
		st, err := lstat(s)
		if err != nil {
			return err
		}
		if isDir(st) {
			if err := os.Mkdir(d, 0o700); err != nil {
				return err
			}
			if err := c.copyDir(s, d); err != nil {
				return err
			}
			if err := copyMeta(s, d, st); err != nil {
				return err
			}
			continue
		}
		if err := c.copyEntry(s, d, st); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies one non-directory.
func (c *copier) copyEntry(src, dst string, st *unix.Stat_t) error {
	if st.Nlink > 1 && c.links != nil {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := c.links[key]; ok {
			return os.Link(first, dst)
		}
		c.links[key] = dst
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if err := copyFileContent(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	default:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
	}
	return copyMeta(src, dst, st)
}

func copyFileContent(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	// A reflink where the filesystem has them, else copy_file_range
	// through io.Copy.
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err != nil {
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return fmt.Errorf("copying %s: %w", src, err)
		}
	}
	return out.Close()
}

// copyMeta gives dst the owner, mode, xattrs (but trusted.overlay.*) and
// times of src, whose stat is st. dst never is a symlink unless src is.
func copyMeta(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "lchown", Path: dst, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	xs, err := xattrs(src)
	if err != nil {
		return err
	}
	for _, x := range xs {
		if err := unix.Lsetxattr(dst, x.name, x.value, 0); err != nil {
			return &os.PathError{Op: "setxattr " + x.name, Path: dst, Err: err}
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: dst, Err: err}
	}
	return nil
}
