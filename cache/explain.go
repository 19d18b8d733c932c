package cache

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// maxFileLines caps the per-file lines of one explanation.
const maxFileLines = 10

// Explain says why a step with this parent and inputs want missed: it
// compares want with the inputs of the records that have the same parent
// (preferring the same instruction kind, then the fewest differences, then
// the most recent) and returns one human line per difference, e.g.
//
//	file src/main.go changed
//	ARG VERSION: "1" -> "2"
//	ENV PATH differs
//	instruction changed: "RUN make" -> "RUN make all"
//	base image digest moved: sha256:0123456789ab -> sha256:ba9876543210
//
// When no record has this parent, the single line says the previous step
// is new, so the cause of the miss is earlier.
func (c *Cache) Explain(parent string, want Inputs) []string {
	cands := c.children(parent)
	if len(cands) == 0 {
		if parent == "" {
			return []string{"no cached stage base at all: nothing to compare with"}
		}
		return []string{"the previous step is not cached either (no cached step follows it), so the cause is earlier"}
	}
	kind := kindOf(want)
	same := slices.DeleteFunc(slices.Clone(cands), func(r *Record) bool { return kindOf(r.Inputs) != kind })
	if len(same) > 0 {
		cands = same
	}
	var best []string
	for i, r := range cands {
		lines := diffInputs(r.Inputs, want)
		if i == 0 || len(lines) < len(best) {
			best = lines
		}
	}
	if len(best) == 0 {
		return []string{"a cached step with the same inputs exists but its key differs (written by another cache version?)"}
	}
	return best
}

// children returns the records with this parent, most recent first.
func (c *Cache) children(parent string) []*Record {
	pdir, err := c.parentDir(parent)
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir(pdir)
	if err != nil {
		return nil
	}
	var out []*Record
	for _, e := range entries {
		r, err := readRecord(c.path("records", filepath.Base(e.Name())))
		if err != nil || r.Parent != parent {
			continue
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b *Record) int {
		return cmp.Or(b.Created.Compare(a.Created), strings.Compare(a.Key, b.Key))
	})
	return out
}

// kindOf returns the instruction kind of inputs: the FieldKind value, or
// else the first word of the instruction.
func kindOf(in Inputs) string {
	m := merge(in)
	if k, ok := m[FieldKind]; ok {
		return strings.ToUpper(k.Value)
	}
	word, _, _ := strings.Cut(strings.TrimSpace(m[FieldInstruction].Value), " ")
	return strings.ToUpper(word)
}

// merge groups inputs by field: repeated values are joined with "\x00",
// repeated file lists concatenated.
func merge(in Inputs) map[string]Input {
	m := make(map[string]Input, len(in))
	for _, x := range in {
		if y, ok := m[x.Field]; ok {
			if y.Value != "" && x.Value != "" {
				y.Value += "\x00"
			}
			y.Value += x.Value
			y.Files = append(slices.Clip(y.Files), x.Files...)
			y.IsFiles = y.IsFiles || x.IsFiles
			m[x.Field] = y
			continue
		}
		m[x.Field] = x
	}
	return m
}

// fieldOrder lists the fields of want then those only in old, with base
// and instruction first.
func fieldOrder(old, want Inputs) []string {
	var out []string
	seen := map[string]bool{}
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, f := range []string{FieldBase, FieldKind, FieldInstruction} {
		for _, in := range [][]Input{want, old} {
			if slices.ContainsFunc(in, func(x Input) bool { return x.Field == f }) {
				add(f)
			}
		}
	}
	for _, in := range [][]Input{want, old} {
		for _, x := range in {
			add(x.Field)
		}
	}
	return out
}

// diffInputs explains how want differs from old, one line per difference.
func diffInputs(old, want Inputs) []string {
	o, w := merge(old), merge(want)
	_, oi := o[FieldInstruction]
	_, wi := w[FieldInstruction]
	var lines []string
	for _, f := range fieldOrder(old, want) {
		a, inOld := o[f]
		b, inWant := w[f]
		switch {
		case f == FieldKind && (oi || wi):
			// the instruction line says it
		case a.IsFiles || b.IsFiles:
			lines = append(lines, diffFiles(f, a.Files, b.Files)...)
		case f == FieldArg:
			lines = append(lines, diffVars("ARG", a.Value, b.Value, true)...)
		case f == FieldEnv:
			lines = append(lines, diffVars("ENV", a.Value, b.Value, false)...)
		case inOld && inWant && a.Value == b.Value:
		case f == FieldBase && inOld && inWant:
			lines = append(lines, fmt.Sprintf("base image digest moved: %s -> %s", short(a.Value), short(b.Value)))
		case f == FieldInstruction && inOld && inWant:
			lines = append(lines, fmt.Sprintf("instruction changed: %s -> %s", quote(a.Value), quote(b.Value)))
		case !inOld:
			lines = append(lines, fmt.Sprintf("%s added: %s", f, quote(b.Value)))
		case !inWant:
			lines = append(lines, fmt.Sprintf("%s removed (was %s)", f, quote(a.Value)))
		default:
			lines = append(lines, fmt.Sprintf("%s changed: %s -> %s", f, quote(a.Value), quote(b.Value)))
		}
	}
	return lines
}

// diffFiles explains per-file differences, at most maxFileLines of them.
func diffFiles(field string, old, want []FileDigest) []string {
	o := make(map[string]string, len(old))
	for _, f := range old {
		o[f.Path] = f.Digest
	}
	w := make(map[string]string, len(want))
	for _, f := range want {
		w[f.Path] = f.Digest
	}
	suffix := ""
	if field != FieldFiles {
		suffix = " (" + field + ")"
	}
	var lines []string
	for _, f := range sortFiles(want) {
		d, ok := o[f.Path]
		switch {
		case !ok:
			lines = append(lines, fmt.Sprintf("file %s added%s", f.Path, suffix))
		case d != w[f.Path]:
			lines = append(lines, fmt.Sprintf("file %s changed%s", f.Path, suffix))
		}
		delete(o, f.Path)
	}
	for _, f := range sortFiles(old) {
		if _, ok := o[f.Path]; ok {
			lines = append(lines, fmt.Sprintf("file %s removed%s", f.Path, suffix))
			delete(o, f.Path)
		}
	}
	if len(lines) > maxFileLines {
		n := len(lines) - maxFileLines
		lines = append(lines[:maxFileLines], fmt.Sprintf("... and %d more file changes%s", n, suffix))
	}
	return lines
}

// diffVars explains differences between two "NAME=value\x00..." lists;
// showValues prints values (ARG) or only says they differ (ENV, which may
// carry secrets).
func diffVars(what, old, want string, showValues bool) []string {
	o, w := parseVars(old), parseVars(want)
	names := make([]string, 0, len(o)+len(w))
	for n := range o {
		names = append(names, n)
	}
	for n := range w {
		if _, ok := o[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var lines []string
	for _, n := range names {
		a, inOld := o[n]
		b, inWant := w[n]
		switch {
		case inOld && inWant && a == b:
		case showValues:
			lines = append(lines, fmt.Sprintf("%s %s: %s -> %s", what, n, varText(a, inOld), varText(b, inWant)))
		case !inOld:
			lines = append(lines, fmt.Sprintf("%s %s added", what, n))
		case !inWant:
			lines = append(lines, fmt.Sprintf("%s %s removed", what, n))
		default:
			lines = append(lines, fmt.Sprintf("%s %s differs", what, n))
		}
	}
	return lines
}

func varText(v string, set bool) string {
	if !set {
		return "(unset)"
	}
	return quote(v)
}

// parseVars splits "A=1\x00B=2" into a map; the last of repeated names
// wins. An entry without "=" is a name with an empty value.
func parseVars(s string) map[string]string {
	m := map[string]string{}
	for kv := range strings.SplitSeq(s, "\x00") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// quote quotes s for a message, shortened to about 80 characters.
func quote(s string) string {
	if r := []rune(s); len(r) > 80 {
		s = string(r[:77]) + "..."
	}
	return strconv.Quote(s)
}

// short abbreviates a digest to its algorithm and 12 hex digits.
func short(d string) string {
	if d == "" {
		return `""`
	}
	if alg, h, ok := strings.Cut(d, ":"); ok && len(h) > 12 {
		return alg + ":" + h[:12]
	}
	return d
}
