package builder

import (
	"bytes"
	"context"
	"fmt"

	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/store"
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
	st := req.Store
	if st == nil {
		var err error
		if st, err = store.Open(req.Root); err != nil {
			return nil, false, fmt.Errorf("opening store %s: %w", req.Root, err)
		}
	}
	src, err := openSource(ctx, st, req)
	if err != nil {
		return nil, false, err
	}
	defer src.cleanup()
	plan, err := parser.Parse(bytes.NewReader(src.recipe), parser.Options{
		File: src.display, BuildArgs: req.BuildArgs, Target: req.Target, Platform: req.Platform,
	})
	if err != nil {
		return nil, false, err
	}
	return Lint(plan, Options{Store: st, Settings: req.Settings}), plan.LintConfig().Error, nil
}
