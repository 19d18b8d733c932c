package parser

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Expansion limits: a recipe of a few lines can double a variable into
// gigabytes ("ENV A=$A$A" forty times), so every expansion is bounded.
const (
	// MaxWordExpansion is the largest value one word may expand to.
	MaxWordExpansion = 1 << 20
	// MaxStepExpansion is the most one instruction may expand to, all
	// its words together.
	MaxStepExpansion = 4 << 20
)

// ErrExpansionTooLarge is the cause of the errors of expansions past
// MaxWordExpansion or MaxStepExpansion.
var ErrExpansionTooLarge = errors.New("expansion too large")

// tooLarge is an expansion past limit bytes.
type tooLarge struct{ limit int }

func (e tooLarge) Error() string        { return fmt.Sprintf("expansion exceeds %d bytes", e.limit) }
func (e tooLarge) Is(target error) bool { return target == ErrExpansionTooLarge }

// expander expands the words of one instruction within the limits. Its
// env counts the bytes of the values it hands out: once they pass the
// instruction's limit it hands out "" (so the shell lexer never builds a
// huge string) and the expansion fails.
type expander struct {
	lex  *shell.Lex
	env  shell.EnvGetter
	used int // bytes handed out by Get plus bytes of expanded words
	over bool
	refs map[string]bool // when not nil, gets every name looked up
}

func newExpander(lex *shell.Lex, env shell.EnvGetter) *expander {
	return &expander{lex: lex, env: env}
}

// Get implements shell.EnvGetter.
func (e *expander) Get(key string) (string, bool) {
	if e.refs != nil {
		e.refs[key] = true
	}
	v, ok := e.env.Get(key)
	if e.over {
		return "", ok
	}
	if e.used += len(v); e.used > MaxStepExpansion {
		e.over = true
		return "", ok
	}
	return v, ok
}

// Keys implements shell.EnvGetter.
func (e *expander) Keys() []string { return e.env.Keys() }

// word expands one word.
func (e *expander) word(w string) (string, error) {
	if err := e.checkReplace(w); err != nil {
		return "", err
	}
	v, _, err := e.lex.ProcessWord(w, e)
	if err != nil {
		return "", err
	}
	return v, e.account(len(v))
}

// words expands one word into fields (EXPOSE).
func (e *expander) words(w string) ([]string, error) {
	if err := e.checkReplace(w); err != nil {
		return nil, err
	}
	vs, err := e.lex.ProcessWords(w, e)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, v := range vs {
		n += len(v)
	}
	return vs, e.account(n)
}

// account checks a word's expanded size against the limits.
func (e *expander) account(n int) error {
	switch {
	case e.over:
		return tooLarge{MaxStepExpansion}
	case n > MaxWordExpansion:
		return tooLarge{MaxWordExpansion}
	}
	if e.used += n; e.used > MaxStepExpansion {
		e.over = true
		return tooLarge{MaxStepExpansion}
	}
	return nil
}

// replaceRef finds the pattern replacements of a word: ${NAME/...} and
// ${NAME//...}, whose output can be its value's length times its
// replacement's.
var replaceRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)/`)

// varRef finds the variable references of a word.
var varRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// checkReplace rejects a word with pattern replacements whose output
// could pass the word limit: every variable of the word, times one more
// than the value's length for each replacement. The bound is loose only
// for large values, which is where it matters.
func (e *expander) checkReplace(w string) error {
	reps := replaceRef.FindAllStringSubmatch(w, -1)
	if len(reps) == 0 {
		return nil
	}
	bound := len(w)
	for _, m := range varRef.FindAllStringSubmatch(w, -1) {
		v, _ := e.env.Get(m[1])
		bound += len(v)
	}
	for _, m := range reps {
		v, _ := e.env.Get(m[1])
		if bound > MaxWordExpansion/(len(v)+1) {
			return tooLarge{MaxWordExpansion}
		}
		bound *= len(v) + 1
	}
	if bound > MaxWordExpansion {
		return tooLarge{MaxWordExpansion}
	}
	return nil
}

// mapEnv is a shell environment read from a map as it is, without a
// copy per lookup.
type mapEnv map[string]string

func (m mapEnv) Get(key string) (string, bool) {
	v, ok := m[key]
	return v, ok
}

func (m mapEnv) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// sliceEnv is a shell environment read from a "KEY=VALUE" list in which
// later entries win. A lookup scans the list from its end: a step reads a
// few variables, so that costs less than a map built for every step of a
// recipe with thousands of ENV.
type sliceEnv []string

func (e sliceEnv) Get(key string) (string, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		kv := e[i]
		if kv == key {
			return "", true
		}
		if len(kv) > len(key) && kv[len(key)] == '=' && kv[:len(key)] == key {
			return kv[len(key)+1:], true
		}
	}
	return "", false
}

func (e sliceEnv) Keys() []string {
	keys := make([]string, 0, len(e))
	for _, kv := range e {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	return keys
}
