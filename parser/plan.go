package parser

import (
	"fmt"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Location is a place in a recipe.
type Location struct {
	File string
	Line int // 1-based; 0 when unknown
}

func (l Location) String() string {
	if l.Line <= 0 {
		return l.File
	}
	return fmt.Sprintf("%s:%d", l.File, l.Line)
}

// Error is a recipe problem at a location. Its message reads
// "FILE:LINE: message".
type Error struct {
	Loc Location
	Msg string
	Err error // underlying cause, may be nil
}

func (e *Error) Error() string { return e.Loc.String() + ": " + e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Options control parsing.
type Options struct {
	File      string            // recipe name used in locations
	BuildArgs map[string]string // --build-arg values
	Target    string            // stage name or index to build; "" = last stage
	Platform  string            // target platform "os/arch[/variant]"; "" = host (the build platform is always the host)
}

// Plan is a parsed recipe.
type Plan struct {
	File string
	// Platform is the target platform, normalized ("linux/arm64").
	Platform string
	// Stages holds every stage in recipe order; Stages[i].Index == i.
	Stages []*Stage
	// Target is the index of the stage to build.
	Target int
	// Needed[i] reports whether stage i is needed to build Target.
	Needed []bool
	// GlobalArgs are the ARGs declared before the first FROM, with build
	// args applied, plus the automatic args BuildKit defines
	// (TARGETPLATFORM, TARGETOS, TARGETOSVERSION, TARGETARCH,
	// TARGETVARIANT, BUILDPLATFORM, BUILDOS, BUILDOSVERSION, BUILDARCH,
	// BUILDVARIANT, and TARGETSTAGE: the --target given, or "default").
	GlobalArgs map[string]string
	// BuildArgs are the --build-arg values as given.
	BuildArgs map[string]string
	// Warnings are non-fatal findings ("FILE:LINE: message"), such as
	// empty continuation lines.
	Warnings []string

	escape rune
	lint   *lintState // the "# check=" settings and the parser's lint findings
	// metaArgs are the names of the ARGs declared before the first FROM.
	metaArgs map[string]bool
}

// Stage is one FROM section.
type Stage struct {
	Index int
	Name  string // lower-cased AS name, "" when unnamed
	// From is the FROM reference with global ARGs expanded: "scratch", an
	// image reference (possibly "oci-archive:PATH"/"docker-archive:PATH"),
	// or the name/index of an earlier stage (then FromStage >= 0).
	From      string
	FromStage int // index of the base stage, -1 otherwise
	// Platform is FROM --platform expanded and normalized; "" means the
	// target platform (see Plan.StagePlatform).
	Platform string
	Loc      Location
	Steps    []*Step
	// Deps lists the indices of earlier stages this stage reads (its base,
	// every COPY --from / RUN --mount from= stage, and those of the ONBUILD
	// triggers its base stage declares), sorted, unique.
	Deps []int

	onbuildDeps []int  // stages the ONBUILD triggers declared here read
	fromWord    string // the FROM keyword as written, for instruction casing
	rawFrom     string // From and Platform as written, before expansion
	rawPlatform string
}

// Step is one instruction of a stage.
type Step struct {
	Loc  Location
	Text string // the instruction as written (continuation lines joined)
	// cmd is the parsed BuildKit command, with variables not yet
	// expanded; Plan.Expand gives the expanded parser Command.
	cmd instructions.Command
	// FromStage is, for COPY --from= and RUN --mount from= referring to a
	// stage, that stage's index; -1 otherwise.
	FromStage int
	// FromImage is, for COPY --from= referring to an image, its reference.
	FromImage string

	node *parser.Node // the instruction's AST node, re-parsed by Expand
}

// RunNetwork returns, for a RUN step, its --network value as written
// ("" when not given) and true; for other steps "" and false.
func (s *Step) RunNetwork() (string, bool) {
	c, ok := s.cmd.(*instructions.RunCommand)
	if !ok {
		return "", false
	}
	return instructions.GetNetwork(c), true
}

// Sets returns the names an ARG or ENV step declares, as written, and
// whether it is an ENV; nil for other steps.
func (s *Step) Sets() (names []string, env bool) {
	switch c := s.cmd.(type) {
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			names = append(names, kv.Key)
		}
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			names = append(names, kv.Key)
		}
		env = true
	}
	return names, env
}

// StagePlatform is the platform stage i is built for: its FROM
// --platform, else that of the stage it is built FROM (as BuildKit), else
// the plan's target platform.
func (p *Plan) StagePlatform(i int) string {
	for st := p.Stages[i]; ; st = p.Stages[st.FromStage] {
		if st.Platform != "" {
			return st.Platform
		}
		if st.FromStage < 0 {
			return p.Platform
		}
	}
}

// ArgNames are the names of the ARGs the stage's steps declare, in order.
func (st *Stage) ArgNames() []string {
	var names []string
	for _, s := range st.Steps {
		if n, env := s.Sets(); !env {
			names = append(names, n...)
		}
	}
	return names
}
