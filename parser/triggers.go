package parser

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// ParseTriggers parses the ONBUILD triggers of a base image config (each
// one instruction, possibly with heredocs) into steps located in file.
// ONBUILD, FROM and MAINTAINER triggers are errors. COPY --from references
// are left unresolved: FromStage is -1 and FromImage holds the raw value;
// resolve them with Plan.LookupStage. Expand the steps with the Plan of
// the build that inherits them.
func ParseTriggers(triggers []string, file string) ([]*Step, error) {
	steps := make([]*Step, 0, len(triggers))
	for i, t := range triggers {
		s, err := parseTrigger(t, file)
		if err != nil {
			return nil, errorf(Location{File: file}, "ONBUILD trigger %d (%q): %w", i+1, t, err)
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// parseTrigger parses one trigger.
func parseTrigger(t, file string) (s *Step, err error) {
	defer func() {
		if v := recover(); v != nil {
			s, err = nil, fmt.Errorf("internal error: %v", v)
		}
	}()
	if !utf8.ValidString(t) || strings.ContainsRune(t, 0) {
		return nil, fmt.Errorf("trigger is not text")
	}
	res, err := parser.Parse(strings.NewReader(t))
	if err != nil {
		return nil, err
	}
	if len(res.AST.Children) != 1 {
		return nil, fmt.Errorf("want one instruction, got %d", len(res.AST.Children))
	}
	n := res.AST.Children[0]
	switch name := strings.ToUpper(n.Value); name {
	case "ONBUILD":
		return nil, fmt.Errorf("chaining ONBUILD via ONBUILD ONBUILD isn't allowed")
	case "FROM", "MAINTAINER":
		return nil, fmt.Errorf("%s isn't allowed as an ONBUILD trigger", name)
	}
	cmd, err := instructions.ParseCommand(n)
	if err != nil {
		return nil, err
	}
	s = &Step{
		Loc:       Location{File: file},
		Text:      strings.TrimSpace(n.Original),
		cmd:       cmd,
		FromStage: -1,
		node:      n,
	}
	if c, ok := cmd.(*instructions.CopyCommand); ok {
		s.FromImage = c.From
	}
	return s, nil
}
