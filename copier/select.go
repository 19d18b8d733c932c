package copier

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
)

// ErrNoSources is returned when the sources select nothing.
var ErrNoSources = errors.New("no source files were specified")

// ErrMultipleSources is returned for several sources and a destination that
// is not a directory.
//
//lint:ignore ST1005 Docker's wording, which users search for.
var ErrMultipleSources = errors.New("When using COPY with more than one source file, the destination must be a directory and end with a /")

// Source is one entry selected for copying. Select returns each match (a
// source path, or one path a wildcard matched) followed by the entries of
// its directory walk, in lexical order with directories before their
// contents.
type Source struct {
	Match int         // index of the match this entry belongs to, counted over all sources
	Name  string      // base name of the match as written or matched (a file match goes to dest/Name)
	Sub   string      // slash path of the entry below its match; "" for the match itself
	Rel   string      // slash path relative to SrcRoot ("." for SrcRoot itself)
	Path  string      // absolute path inside SrcRoot
	Info  fs.FileInfo // from lstat; a match that is a symlink is followed inside SrcRoot first
	URL   string      // for an ADD URL: the URL, with Rel, Path and Info empty
}

// Select resolves req.Sources inside req.SrcRoot: wildcards are expanded,
// a symlink named (or matched) as a source is followed inside SrcRoot,
// directories are walked without following symlinks, sockets are skipped,
// and req.Ignore excludes entries as .dockerignore does. A source that
// selects nothing is an error.
func Select(req Request) ([]Source, error) {
	if len(req.Sources) == 0 {
		return nil, ErrNoSources
	}
	s := selector{root: req.SrcRoot, ignore: req.Ignore}
	var out []Source
	match := 0
	for _, arg := range req.Sources {
		if isURL(arg) && !req.Add {
			return nil, fmt.Errorf("source %s: a URL is only allowed with ADD", arg)
		}
		if isURL(arg) {
			out = append(out, Source{Match: match, URL: arg})
			match++
			continue
		}
		names, err := s.expand(arg)
		if err != nil {
			return nil, err
		}
		wildcard := hasMeta(relPath(arg))
		found := false
		for _, name := range names {
			entries, err := s.one(name, match, wildcard)
			if err != nil {
				return nil, err
			}
			if len(entries) == 0 {
				continue
			}
			out = append(out, entries...)
			match++
			found = true
		}
		if !found {
			return nil, fmt.Errorf("source %q: pattern matched no files: %w", arg, ErrNoSources)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoSources
	}
	return out, nil
}

type selector struct {
	root   string
	ignore *patternmatcher.PatternMatcher
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// relPath cleans a source as written to a slash path relative to the
// root; "../x" and "/x" both mean "x".
func relPath(arg string) string {
	p := path.Clean("/" + filepath.ToSlash(arg))
	if p == "/" {
		return "."
	}
	return p[1:]
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// expand returns the paths (relative to the root, not resolved) that arg
// names: arg itself, or what its wildcards match, component by component
// as Docker does with filepath.Match.
func (s *selector) expand(arg string) ([]string, error) {
	rel := relPath(arg)
	if !hasMeta(rel) {
		return []string{rel}, nil
	}
	cands := []string{"."}
	for _, comp := range strings.Split(rel, "/") {
		var next []string
		for _, c := range cands {
			if !hasMeta(comp) {
				next = append(next, path.Join(c, comp))
				continue
			}
			dir, err := securejoin.SecureJoin(s.root, c)
			if err != nil {
				return nil, fmt.Errorf("resolving %s: %w", c, err)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue // not a directory, or missing: matches nothing
			}
			for _, e := range ents {
				ok, err := path.Match(comp, e.Name())
				if err != nil {
					return nil, fmt.Errorf("source %q: %w", arg, err)
				}
				if ok {
					next = append(next, path.Join(c, e.Name()))
				}
			}
		}
		cands = next
	}
	var out []string
	for _, c := range cands {
		p, err := securejoin.SecureJoin(s.root, c)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", c, err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if s.ignore != nil {
			// Ignored files are not in the context; an ignored directory may
			// still hold files an exception pattern brings back.
			if ex, err := s.ignore.MatchesOrParentMatches(c); err != nil {
				return nil, fmt.Errorf("matching .dockerignore: %w", err)
			} else if ex && (!fi.IsDir() || !s.ignore.Exclusions()) {
				continue
			}
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("source %q: pattern matched no files: %w", arg, ErrNoSources)
	}
	sort.Strings(out)
	return out, nil
}

// one selects the match name (relative to the root) and, for a directory,
// what is below it. An ignored match is an error, or, for a wildcard
// match, nothing.
func (s *selector) one(name string, match int, wildcard bool) ([]Source, error) {
	p, err := securejoin.SecureJoin(s.root, name)
	if err != nil {
		return nil, fmt.Errorf("resolving source %s: %w", name, err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("source %q not found: %w", name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("source %q: %w", name, err)
	}
	rel, err := filepath.Rel(s.root, p)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", name, err)
	}
	rel = filepath.ToSlash(rel)
	var mi patternmatcher.MatchInfo
	excluded := false
	if s.ignore != nil && rel != "." {
		if excluded, mi, err = s.ignore.MatchesUsingParentResults(rel, mi); err != nil {
			return nil, fmt.Errorf("matching .dockerignore: %w", err)
		}
	}
	if excluded && (!fi.IsDir() || !s.ignore.Exclusions()) {
		return nil, fmt.Errorf("source %q is excluded by .dockerignore: %w", name, fs.ErrNotExist)
	}
	top := Source{Match: match, Name: path.Base(name), Rel: rel, Path: p, Info: fi}
	if fi.Mode()&fs.ModeSocket != 0 {
		return nil, fmt.Errorf("source %q is a socket", name)
	}
	if !fi.IsDir() {
		return []Source{top}, nil
	}
	below, err := s.walk(top, p, rel, "", mi)
	if err != nil {
		return nil, err
	}
	if excluded && len(below) == 0 {
		if wildcard {
			return nil, nil
		}
		return nil, fmt.Errorf("source %q is excluded by .dockerignore: %w", name, fs.ErrNotExist)
	}
	return append([]Source{top}, below...), nil
}

// walk lists the directory dir (rel from the root, sub from the match).
func (s *selector) walk(top Source, dir, rel, sub string, parent patternmatcher.MatchInfo) ([]Source, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading source directory %s: %w", rel, err)
	}
	var out []Source
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("reading source %s: %w", path.Join(rel, e.Name()), err)
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			continue
		}
		src := Source{
			Match: top.Match, Name: top.Name,
			Sub:  path.Join(sub, e.Name()),
			Rel:  path.Join(rel, e.Name()),
			Path: filepath.Join(dir, e.Name()),
			Info: fi,
		}
		var mi patternmatcher.MatchInfo
		excluded := false
		if s.ignore != nil {
			if excluded, mi, err = s.ignore.MatchesUsingParentResults(src.Rel, parent); err != nil {
				return nil, fmt.Errorf("matching .dockerignore: %w", err)
			}
		}
		if excluded && (!fi.IsDir() || !s.ignore.Exclusions()) {
			continue
		}
		if !fi.IsDir() {
			out = append(out, src)
			continue
		}
		below, err := s.walk(top, src.Path, src.Rel, src.Sub, mi)
		if err != nil {
			return nil, err
		}
		if excluded && len(below) == 0 {
			continue
		}
		out = append(out, src)
		out = append(out, below...)
	}
	return out, nil
}
