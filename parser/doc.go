// Package parser provides the recipe front end of lading: it turns recipe
// text (any Dockerfile) into a Plan of stages and typed steps, the build
// arguments in scope, and the stage dependency graph. It wraps BuildKit's
// Dockerfile parser, instructions and shell packages, whose types stay
// inside it: Plan.Expand hands out the parser's own Command types (*Run,
// *Copy, ...). It reports every problem as an *Error reading
// "FILE:LINE: message".
//
// A Plan is built once and then only read:
//
//	plan, err := parser.Parse(f, parser.Options{File: "Recipe", BuildArgs: args})
//	// plan.Stages[i].Steps hold unexpanded commands; plan.Needed says
//	// which stages lead to plan.Target; plan.GlobalArgs hold the meta
//	// ARGs (used for FROM) and the automatic platform args.
//	for _, step := range plan.Stages[plan.Target].Steps {
//		cmd, err := plan.Expand(step, env) // env: image config Env + ARGs so far
//		switch c := cmd.(type) { case *parser.Run: ...; case *parser.Copy: ... }
//	}
//
// Variables are expanded at dispatch time, not at parse time, because their
// values depend on the base image's environment and the ARG and ENV
// instructions executed before the step. Only FROM references, FROM
// --platform values and COPY --from references are expanded by Parse.
//
// The stage rules follow Docker: FROM resolves a name only to an earlier
// stage (any other name is an image reference); COPY --from and RUN --mount
// from= accept the name or index of an earlier stage and treat any other
// value as an image reference, except that a reference to the current or a
// later stage is an error.
//
// ONBUILD instructions are kept as steps (the builder records them in the
// image config); triggers inherited from a base image are turned into steps
// with ParseTriggers.
package parser
