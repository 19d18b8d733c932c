package builder

import (
	"context"

	"github.com/lading-build/lading/parser"
)

// Warning is a linter finding, "FILE:LINE: warning: Rule: message".
type Warning = parser.Warning

// Check runs BuildKit's linter rules (what `docker build --check`
// reports) over the recipe req names, without building or pulling. It
// returns the warnings, and whether the recipe asks for them to fail a
// build ("# check=error=true").
func Check(ctx context.Context, req Request) ([]Warning, bool, error) {
	if err := req.check(); err != nil {
		return nil, false, err
	}
	st, src, plans, err := req.open(ctx)
	if err != nil {
		return nil, false, err
	}
	defer src.cleanup()
	plan := plans[0]
	return Lint(plan, Options{Store: st, Settings: req.Settings}), plan.LintConfig().Error, nil
}
