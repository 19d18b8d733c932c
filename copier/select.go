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
	URL   string      // for an ADD URL or Git repository: the source as written, with Rel, Path and Info empty
	Git   bool        // URL names a Git repository (see IsGitURL)
}

// Select resolves req.Sources inside req.SrcRoot: wildcards are expanded,
// a symlink named (or matched) as a source is followed inside SrcRoot,
// directories are walked without following symlinks, sockets are skipped,
// and req.Ignore excludes entries as .dockerignore does, req.Exclude as
// --exclude does. A source named without wildcards that selects nothing
// is an error, unless --exclude removed what it matched; a wildcard that
// matches nothing selects nothing, as BuildKit allows (its empty-wildcard
// rule), even when no other source remains.
//
// With req.Parents each source is one match: the directory it is
// relative to (SrcRoot, or the part before "/./"), whose walk keeps what
// the rest of the source matches (everything below a matched directory)
// and the directories leading there.
func Select(req Request) ([]Source, error) {
	if len(req.Sources) == 0 {
		return nil, ErrNoSources
	}
	s, err := newSelector(req)
	if err != nil {
		return nil, err
	}
	var out []Source
	match := 0
	for _, arg := range req.Sources {
		switch {
		case req.Add && IsGitURL(arg):
			if _, err := parseGitURL(arg); err != nil {
				return nil, err
			}
			out = append(out, Source{Match: match, URL: arg, Git: true})
			match++
			continue
		case isURL(arg) && !req.Add:
			return nil, fmt.Errorf("source %s: a URL is only allowed with ADD", arg)
		case isURL(arg):
			out = append(out, Source{Match: match, URL: arg})
			match++
			continue
		case req.Parents:
			entries, err := s.parents(arg, match)
			if err != nil {
				return nil, err
			}
			out = append(out, entries...)
			match = entries[len(entries)-1].Match + 1
			continue
		}
		entries, err := s.source(arg, match)
		if err != nil {
			return nil, err
		}
		if len(entries) > 0 {
			match = entries[len(entries)-1].Match + 1
		}
		out = append(out, entries...)
	}
	return out, nil
}

type selector struct {
	root    string
	ignore  *patternmatcher.PatternMatcher // against paths from the root
	exclude *patternmatcher.PatternMatcher // against paths from the match
	// include, with --parents, is the source pattern (nil: everything),
	// against paths from the pivot; comps are its components.
	include *patternmatcher.PatternMatcher
	comps   []string
	noGit   bool // skip entries named .git (a checkout without --keep-git-dir)
	// onRead, when set (by a test), is called with each directory the
	// walk reads, from the goroutine that reads it.
	onRead func(dir string)
}

func newSelector(req Request) (*selector, error) {
	s := &selector{root: req.SrcRoot, ignore: req.Ignore}
	if len(req.Exclude) > 0 {
		pm, err := patternmatcher.New(req.Exclude)
		if err != nil {
			return nil, fmt.Errorf("invalid --exclude: %w", err)
		}
		s.exclude = pm
	}
	return s, nil
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

// source selects what arg names: its matches, numbered from match.
func (s *selector) source(arg string, match int) ([]Source, error) {
	names, err := s.expand(arg)
	if err != nil {
		return nil, err
	}
	wildcard := hasMeta(relPath(arg))
	var out []Source
	excluded := false
	for _, name := range names {
		entries, err := s.one(name, match, wildcard)
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			continue
		}
		if wildcard && s.exclude != nil && !entries[0].Info.IsDir() {
			// A file a wildcard matched is excluded by its name.
			if ex, err := s.exclude.MatchesOrParentMatches(entries[0].Name); err != nil {
				return nil, fmt.Errorf("matching --exclude: %w", err)
			} else if ex {
				excluded = true
				continue
			}
		}
		out = append(out, entries...)
		match++
	}
	if len(out) == 0 && !excluded && !wildcard {
		return nil, fmt.Errorf("source %q: pattern matched no files: %w", arg, ErrNoSources)
	}
	return out, nil
}

// parents selects a --parents source: see Select. A pivot with wildcards
// gives a match per directory it matches.
func (s *selector) parents(arg string, match int) ([]Source, error) {
	pivot, pattern := ".", arg
	if before, after, ok := strings.Cut(filepath.ToSlash(arg), "/./"); ok {
		pivot, pattern = relPath(before), after
	}
	pattern = relPath(pattern)
	ps := *s
	if pattern != "." {
		pm, err := patternmatcher.New([]string{pattern})
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", arg, err)
		}
		ps.include, ps.comps = pm, strings.Split(pattern, "/")
	}
	pivots := []string{pivot}
	wildcard := hasMeta(pivot)
	if wildcard {
		var err error
		if pivots, err = s.expand(pivot); err != nil {
			return nil, err
		}
	}
	var out []Source
	for _, p := range pivots {
		entries, err := ps.one(p, match, wildcard)
		if err != nil {
			return nil, err
		}
		switch {
		case len(entries) == 0 || (wildcard && !entries[0].Info.IsDir()):
			continue
		case !entries[0].Info.IsDir():
			return nil, fmt.Errorf("source %q: %s is not a directory", arg, p)
		case len(entries) == 1 && pattern != ".":
			continue // nothing matched in this pivot
		}
		out = append(out, entries...)
		match++
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("source %q: no files match %s in %s: %w", arg, pattern, pivot, ErrNoSources)
	}
	return out, nil
}

// expand returns the paths (relative to the root, not resolved) that arg
// names: arg itself, or what its wildcards match (maybe nothing),
// component by component as Docker does with filepath.Match.
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
	var st state
	excluded := false
	if s.ignore != nil && rel != "." {
		if excluded, st.ignore, err = s.ignore.MatchesUsingParentResults(rel, st.ignore); err != nil {
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
	out := []Source{top}
	if err := s.walk(&out, top, p, rel, st); err != nil {
		return nil, err
	}
	if excluded && len(out) == 1 {
		if wildcard {
			return nil, nil
		}
		return nil, fmt.Errorf("source %q is excluded by .dockerignore: %w", name, fs.ErrNotExist)
	}
	return out, nil
}

// state carries a directory's pattern results to its entries.
type state struct {
	ignore, exclude, include patternmatcher.MatchInfo
}

// judge decides about an entry below a match, at rel from the root and
// sub from the match: whether it is kept, and for a directory whether to
// walk it (a directory that is not kept is walked when an exception, or
// the --parents pattern, could keep something below it; it is then kept
// with what is).
func (s *selector) judge(pm *matchers, rel, sub string, dir bool, parent state) (keep, walk bool, st state, err error) {
	keep, walk = true, dir
	if s.noGit && path.Base(sub) == ".git" {
		return false, false, st, nil
	}
	var m bool
	if pm.ignore != nil {
		if m, st.ignore, err = pm.ignore.MatchesUsingParentResults(rel, parent.ignore); err != nil {
			return false, false, st, fmt.Errorf("matching .dockerignore: %w", err)
		}
		if m {
			keep, walk = false, walk && pm.ignore.Exclusions()
		}
	}
	if pm.exclude != nil {
		if m, st.exclude, err = pm.exclude.MatchesUsingParentResults(sub, parent.exclude); err != nil {
			return false, false, st, fmt.Errorf("matching --exclude: %w", err)
		}
		if m {
			keep, walk = false, walk && pm.exclude.Exclusions()
		}
	}
	if pm.include != nil {
		if m, st.include, err = pm.include.MatchesUsingParentResults(sub, parent.include); err != nil {
			return false, false, st, fmt.Errorf("matching source pattern: %w", err)
		}
		if !m {
			keep, walk = false, walk && s.mayInclude(sub)
		}
	}
	return keep, walk, st, nil
}

// mayInclude reports whether the --parents pattern could match below the
// directory sub, comparing it with the pattern component by component up
// to a "**".
func (s *selector) mayInclude(sub string) bool {
	for i, c := range strings.Split(sub, "/") {
		if i >= len(s.comps) {
			return false
		}
		if strings.Contains(s.comps[i], "**") {
			return true
		}
		if ok, err := path.Match(s.comps[i], c); err == nil && !ok {
			return false
		}
	}
	return true
}
