package copier

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"
)

// A match that is a directory is walked in two passes. The first reads
// the directories (entries sorted, judged against the patterns, and
// lstat'ed relative to the open directory) on up to GOMAXPROCS
// goroutines: a walker that meets a subdirectory hands it to an idle
// goroutine, or reads it itself when none is idle. The second, on the
// caller's goroutine, lays the entries out in Select's order and returns
// the first error in that order, so neither the result nor the error
// depends on the scheduling.

// dirList is what the first pass read of one directory: its entries up
// to the first error, and that error.
type dirList struct {
	ents []walkEntry
	err  error
}

type walkEntry struct {
	src   Source
	keep  bool     // false: a directory read only for what an exception may keep below it
	below *dirList // what is below a directory
}

// matchers are the pattern matchers of one walking goroutine: a
// PatternMatcher compiles its patterns on first use, without a lock.
type matchers struct {
	ignore, exclude, include *patternmatcher.PatternMatcher
}

type walker struct {
	s   *selector
	top Source
	// An entry's Path is the match's path, "/", then its Sub: subAt is
	// where Sub starts in Path, relAt where Rel starts in it (-1 when the
	// match was reached through a symlink and Rel is not a suffix).
	subAt, relAt int
	idle         chan *matchers // the matchers of each goroutine that may start
	wg           sync.WaitGroup
	n            atomic.Int64 // entries read
}

// walk appends to out what is below the directory match top (at dir on
// disk, rel from the root), whose pattern results are st.
func (s *selector) walk(out *[]Source, top Source, dir, rel string, st state) error {
	own := &matchers{ignore: s.ignore, exclude: s.exclude, include: s.include}
	w := &walker{s: s, top: top, subAt: len(joinPath(dir, "")), relAt: -1}
	switch root := filepath.Clean(s.root); {
	case rel == ".":
		w.relAt = w.subAt
	case dir == joinPath(root, rel):
		w.relAt = len(joinPath(root, ""))
	}
	if n := goruntime.GOMAXPROCS(0) - 1; n > 0 {
		w.idle = make(chan *matchers, n)
		for range n {
			m, err := own.clone()
			if err != nil {
				return err
			}
			w.idle <- m
		}
	}
	root := &dirList{}
	w.read(root, own, dir, rel, st)
	w.wg.Wait()
	*out = slices.Grow(*out, int(w.n.Load()))
	return w.emit(out, root)
}

// read fills l with the entries of dir (rel from the root), reading its
// subdirectories too; m are this goroutine's matchers.
func (w *walker) read(l *dirList, m *matchers, dir, rel string, parent state) {
	s := w.s
	if s.onRead != nil {
		s.onRead(dir)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		l.err = fmt.Errorf("reading source directory %s: %w", rel, &fs.PathError{Op: "open", Path: dir, Err: err})
		return
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		l.err = fmt.Errorf("reading source directory %s: %w", rel, err)
		return
	}
	slices.SortFunc(ents, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	l.ents = make([]walkEntry, 0, len(ents))
	for _, e := range ents {
		name := e.Name()
		src := Source{Match: w.top.Match, Name: w.top.Name, Path: joinPath(dir, name)}
		src.Sub = src.Path[w.subAt:]
		if w.relAt >= 0 {
			src.Rel = src.Path[w.relAt:]
		} else {
			src.Rel = joinRel(rel, name)
		}
		keep, walk, st, err := s.judge(m, src.Rel, src.Sub, e.IsDir(), parent)
		if err != nil {
			l.err = err
			return
		}
		if !keep && !walk {
			continue
		}
		info := &statInfo{name: name}
		if err := fstatat(fd, name, &info.st); err != nil {
			l.err = fmt.Errorf("reading source %s: %w", src.Rel, &fs.PathError{Op: "lstat", Path: src.Path, Err: err})
			return
		}
		if info.Mode()&fs.ModeSocket != 0 {
			continue
		}
		src.Info = info
		ent := walkEntry{src: src, keep: keep}
		if info.IsDir() {
			ent.below = &dirList{}
			w.spawn(ent.below, m, src.Path, src.Rel, st)
		}
		l.ents = append(l.ents, ent)
	}
	w.n.Add(int64(len(l.ents)))
}

// spawn reads the directory dir into l on an idle goroutine, or on this
// one (with its matchers m) when none is idle.
func (w *walker) spawn(l *dirList, m *matchers, dir, rel string, st state) {
	select {
	case idle := <-w.idle:
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.read(l, idle, dir, rel, st)
			w.idle <- idle
		}()
	default:
		w.read(l, m, dir, rel, st)
	}
}

// emit appends the entries of l and below to out in Select's order: a
// directory before its contents, and a directory that is not kept only
// when something below it is.
func (w *walker) emit(out *[]Source, l *dirList) error {
	for i := range l.ents {
		e := &l.ents[i]
		at := len(*out)
		*out = append(*out, e.src)
		if e.below == nil {
			continue
		}
		if err := w.emit(out, e.below); err != nil {
			return err
		}
		if !e.keep && len(*out) == at+1 {
			*out = (*out)[:at]
		}
	}
	return l.err
}

// clone returns matchers with the same patterns as m, for another
// goroutine.
func (m *matchers) clone() (*matchers, error) {
	var c matchers
	var err error
	for _, p := range []struct {
		from, to **patternmatcher.PatternMatcher
	}{
		{&m.ignore, &c.ignore}, {&m.exclude, &c.exclude}, {&m.include, &c.include},
	} {
		if *p.from == nil {
			continue
		}
		if *p.to, err = clonePatterns(*p.from); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// clonePatterns returns a new PatternMatcher with pm's patterns.
func clonePatterns(pm *patternmatcher.PatternMatcher) (*patternmatcher.PatternMatcher, error) {
	var pats []string
	for _, p := range pm.Patterns() {
		s := p.String()
		switch {
		case p.Exclusion():
			s = "!" + s
		case strings.HasPrefix(s, "!"):
			s = "./" + s // a pattern cleaned to "!x" that is not an exception
		}
		pats = append(pats, s)
	}
	c, err := patternmatcher.New(pats)
	if err != nil {
		return nil, fmt.Errorf("copying patterns: %w", err)
	}
	return c, nil
}

// joinRel joins a slash path relative to a root ("." or "" for the root
// itself) and the name of an entry in it.
func joinRel(dir, name string) string {
	if dir == "" || dir == "." {
		return name
	}
	return dir + "/" + name
}

// joinPath joins a clean absolute directory and the name of an entry in
// it.
func joinPath(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// fstatat lstats name in the directory open as dirfd, into st.
func fstatat(dirfd int, name string, st *syscall.Stat_t) error {
	var u unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &u, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	*st = syscall.Stat_t{
		Dev: u.Dev, Ino: u.Ino, Nlink: u.Nlink, Mode: u.Mode, Uid: u.Uid, Gid: u.Gid, Rdev: u.Rdev,
		Size: u.Size, Blksize: u.Blksize, Blocks: u.Blocks,
		Atim: syscall.Timespec{Sec: u.Atim.Sec, Nsec: u.Atim.Nsec},
		Mtim: syscall.Timespec{Sec: u.Mtim.Sec, Nsec: u.Mtim.Nsec},
		Ctim: syscall.Timespec{Sec: u.Ctim.Sec, Nsec: u.Ctim.Nsec},
	}
	return nil
}

// statInfo is the fs.FileInfo of an lstat, as os.Lstat gives it: Sys
// returns the *syscall.Stat_t.
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func (fi *statInfo) Name() string       { return fi.name }
func (fi *statInfo) Size() int64        { return fi.st.Size }
func (fi *statInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *statInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *statInfo) Sys() any           { return &fi.st }

func (fi *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if fi.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
