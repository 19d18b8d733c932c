package builder

import (
	"fmt"
	"strings"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/parser"
)

// Lint runs BuildKit's Dockerfile linter rules (what `docker build
// --check` reports) over plan. The ENV of base images already in the
// local store is used to find undefined variables; nothing is pulled or
// built.
func Lint(plan *parser.Plan, opts Options) []parser.Warning {
	return plan.Lint(func(st *parser.Stage) ([]string, bool) {
		if opts.Store == nil || opts.Contexts[st.From] != "" {
			return nil, false
		}
		ref := st.From
		if strings.HasPrefix(ref, "oci-archive:") || strings.HasPrefix(ref, "docker-archive:") {
			return nil, false
		}
		img, err := image.Resolve(opts.Store, ref)
		if err != nil {
			return nil, false
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, false
		}
		return cf.Config.Env, true
	})
}

// ErrLintFailed is returned by Build when the recipe's "# check=error=true"
// directive turns linter warnings into an error.
type ErrLintFailed struct {
	File  string
	Count int
}

func (e *ErrLintFailed) Error() string {
	return fmt.Sprintf("%s: %d linter warning(s) and # check=error=true", e.File, e.Count)
}

// lint reports the plan's linter warnings as build log lines, and fails
// when the recipe asks for that with "# check=error=true".
func (b *build) lint() error {
	ws := Lint(b.plan, b.opts)
	for _, w := range ws {
		b.rep.Log("%s", w)
	}
	if len(ws) > 0 && b.plan.LintConfig().Error {
		return &ErrLintFailed{File: b.plan.File, Count: len(ws)}
	}
	return nil
}
