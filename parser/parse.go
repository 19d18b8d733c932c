package parser

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Parse reads a recipe and returns its Plan. Every problem is reported as
// an *Error naming the recipe line.
func Parse(r io.Reader, opts Options) (plan *Plan, err error) {
	defer func() {
		if v := recover(); v != nil {
			plan, err = nil, errorf(Location{File: opts.File}, "internal error parsing recipe: %v", v)
		}
	}()
	data, err := readRecipe(r, opts.File)
	if err != nil {
		return nil, err
	}
	if err := checkText(data, opts.File); err != nil {
		return nil, err
	}
	if err := checkDirectives(data, opts.File); err != nil {
		return nil, err
	}
	ls, err := newLintState(data, opts.File)
	if err != nil {
		return nil, err
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		if strings.Contains(err.Error(), "file with no instructions") {
			return nil, errorf(Location{File: opts.File, Line: 1}, "no FROM instruction: recipe is empty")
		}
		return nil, fromBuildkit(opts.File, 1, err)
	}
	// The build platform is always the machine lading runs on; --platform
	// sets only the target platform (BuildKit's rule).
	build, target := hostPlatform(), hostPlatform()
	if opts.Platform != "" {
		if target, err = parsePlatform(opts.Platform); err != nil {
			return nil, errorf(Location{File: opts.File}, "%w", err)
		}
	}
	p := &Plan{
		File:      opts.File,
		Platform:  target.String(),
		BuildArgs: maps.Clone(opts.BuildArgs),
		escape:    res.EscapeToken,
		lint:      ls,
	}
	if p.BuildArgs == nil {
		p.BuildArgs = map[string]string{}
	}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		p.Warnings = append(p.Warnings, Location{File: opts.File, Line: line}.String()+": "+w.Short)
		if strings.Contains(w.Short, "mpty continuation") {
			ls.linter(opts.File).Run(&linter.RuleNoEmptyContinuation, at(line), linter.RuleNoEmptyContinuation.Format())
		}
	}
	metas, err := p.split(res.AST)
	if err != nil {
		return nil, err
	}
	if p.GlobalArgs, err = globalArgs(metas, build, target, opts.Target, p.BuildArgs, p.File, p.escape); err != nil {
		return nil, err
	}
	p.metaArgs = map[string]bool{}
	for _, m := range metas {
		for _, kv := range m.cmd.Args {
			p.metaArgs[kv.Key] = true
		}
	}
	if err := p.resolve(); err != nil {
		return nil, err
	}
	if err := p.selectTarget(opts.Target); err != nil {
		return nil, err
	}
	return p, nil
}

// split parses every instruction node and sorts them into meta ARGs and
// stages with steps. Stage references are resolved later by resolve.
func (p *Plan) split(ast *parser.Node) ([]*argNode, error) {
	var metas []*argNode
	lint := p.lint.linter(p.File)
	for _, n := range ast.Children {
		v, err := instructions.ParseInstructionWithLinter(n, lint)
		if err != nil {
			return nil, fromBuildkit(p.File, n.StartLine, err)
		}
		loc := Location{File: p.File, Line: n.StartLine}
		switch c := v.(type) {
		case *instructions.Stage:
			p.Stages = append(p.Stages, &Stage{
				Index:       len(p.Stages),
				Name:        c.Name,
				From:        c.BaseName,
				FromStage:   -1,
				Platform:    c.Platform,
				Loc:         loc,
				fromWord:    firstField(n.Original),
				rawFrom:     c.BaseName,
				rawPlatform: c.Platform,
			})
		case instructions.Command:
			if len(p.Stages) == 0 {
				if a, ok := c.(*instructions.ArgCommand); ok {
					metas = append(metas, &argNode{cmd: a, line: n.StartLine})
					continue
				}
				return nil, errorf(loc, "%s before the first FROM (only ARG may come before FROM)", strings.ToUpper(n.Value))
			}
			if _, ok := c.(*instructions.OnbuildCommand); ok {
				if err := checkOnbuild(n); err != nil {
					return nil, errorAt(p.File, n.StartLine, err)
				}
			}
			st := p.Stages[len(p.Stages)-1]
			st.Steps = append(st.Steps, &Step{
				Loc:       loc,
				Text:      strings.TrimSpace(n.Original),
				cmd:       c,
				FromStage: -1,
				node:      n,
			})
		default:
			return nil, errorf(loc, "unexpected instruction %s", n.Value)
		}
	}
	if len(p.Stages) == 0 {
		line := 1
		if len(ast.Children) > 0 {
			line = ast.Children[0].StartLine
		}
		return nil, errorf(Location{File: p.File, Line: line}, "no FROM instruction")
	}
	return metas, nil
}

// checkOnbuild parses the trigger of an ONBUILD so that a broken trigger
// fails the build that declares it, not the one that inherits it.
func checkOnbuild(n *parser.Node) error {
	if n.Next == nil || len(n.Next.Children) != 1 {
		return errors.New("ONBUILD requires an instruction")
	}
	sub := n.Next.Children[0]
	if _, err := instructions.ParseCommand(sub); err != nil {
		return fmt.Errorf("ONBUILD %s: %w", strings.ToUpper(sub.Value), err)
	}
	return nil
}

// resolve expands FROM references, checks stage names, resolves COPY
// --from and RUN --mount from= references and computes Deps.
func (p *Plan) resolve() error {
	byName := map[string]int{}
	for _, st := range p.Stages {
		if st.Name == "" {
			continue
		}
		if first, ok := byName[st.Name]; ok {
			return errorf(st.Loc, "duplicate stage name %q (first defined at line %d)", st.Name, p.Stages[first].Loc.Line)
		}
		byName[st.Name] = st.Index
	}
	lex := shell.NewLex(p.escape)
	globals := mapEnv(p.GlobalArgs)
	stageArgs := make([]map[string]string, len(p.Stages))
	for _, st := range p.Stages {
		from, err := newExpander(lex, globals).word(st.From)
		if errors.Is(err, ErrExpansionTooLarge) {
			return errorf(st.Loc, "%w", err)
		}
		if err != nil {
			return errorf(st.Loc, "expanding FROM %s: %w", st.From, err)
		}
		if from == "" {
			return errorf(st.Loc, "FROM %s expands to an empty base name", st.From)
		}
		st.From = from
		if i, ok := byName[strings.ToLower(from)]; ok && i < st.Index {
			st.FromStage = i
		}
		if st.Platform != "" {
			if err := p.expandPlatform(st, lex, globals); err != nil {
				return err
			}
		}
		args := map[string]string{}
		if st.FromStage >= 0 {
			maps.Copy(args, stageArgs[st.FromStage])
		}
		if err := p.resolveSteps(st, byName, args); err != nil {
			return err
		}
		if st.FromStage >= 0 {
			// The ONBUILD triggers of the base stage run in this one.
			st.Deps = mergeDeps(st.Deps, p.Stages[st.FromStage].onbuildDeps)
		}
		stageArgs[st.Index] = args
	}
	return nil
}

// expandPlatform expands and normalizes FROM --platform.
func (p *Plan) expandPlatform(st *Stage, lex *shell.Lex, globals shell.EnvGetter) error {
	v, err := newExpander(lex, globals).word(st.Platform)
	if errors.Is(err, ErrExpansionTooLarge) {
		return errorf(st.Loc, "%w", err)
	}
	if err != nil {
		return errorf(st.Loc, "expanding FROM --platform=%s: %w", st.Platform, err)
	}
	plat, err := parsePlatform(v)
	if err != nil {
		return errorf(st.Loc, "FROM --platform=%s: %w", st.Platform, err)
	}
	st.Platform = plat.String()
	return nil
}

// resolveSteps resolves the stage references of st's steps, tracking the
// stage's ARGs in args (which start with those inherited from its base
// stage) so that COPY --from=$X sees them, and sets st.Deps.
func (p *Plan) resolveSteps(st *Stage, byName map[string]int, args map[string]string) error {
	deps := map[int]bool{}
	if st.FromStage >= 0 {
		deps[st.FromStage] = true
	}
	lex := shell.NewLex(p.escape)
	for _, s := range st.Steps {
		switch c := s.cmd.(type) {
		case *instructions.ArgCommand:
			e := newExpander(lex, mapEnv(args))
			for _, kv := range c.Args {
				v, ok, err := p.resolveArg(kv, e)
				if err != nil {
					return argError(s.Loc, kv.Key, err)
				}
				if ok {
					args[kv.Key] = v
				}
			}
		case *instructions.CopyCommand:
			if c.From == "" {
				continue
			}
			ref, err := newExpander(lex, mapEnv(args)).word(c.From)
			if errors.Is(err, ErrExpansionTooLarge) {
				return errorf(s.Loc, "%w", err)
			}
			if err != nil {
				return errorf(s.Loc, "expanding --from=%s: %w", c.From, err)
			}
			if ref == "" {
				return errorf(s.Loc, "--from=%s expands to an empty reference", c.From)
			}
			if s.FromStage, err = p.stageRef(st, ref, byName); err != nil {
				return errorAt(p.File, s.Loc.Line, err)
			}
			if s.FromStage < 0 {
				s.FromImage = ref
			}
			deps[s.FromStage] = true
		case *instructions.OnbuildCommand:
			if err := p.resolveTrigger(st, s, c.Expression, byName); err != nil {
				return err
			}
		case *instructions.RunCommand:
			refs, err := mountRefs(s.node)
			if err != nil {
				return errorAt(p.File, s.Loc.Line, err)
			}
			for _, ref := range refs {
				i, err := p.stageRef(st, ref, byName)
				if err != nil {
					return errorAt(p.File, s.Loc.Line, err)
				}
				if i >= 0 && s.FromStage < 0 {
					s.FromStage = i
				}
				deps[i] = true
			}
		}
	}
	delete(deps, -1)
	for i := range deps {
		st.Deps = append(st.Deps, i)
	}
	sort.Ints(st.Deps)
	return nil
}

// resolveTrigger records in st.onbuildDeps the earlier stages an ONBUILD
// trigger of st reads (COPY --from=, RUN --mount from=), which a stage
// built FROM st depends on.
func (p *Plan) resolveTrigger(st *Stage, s *Step, expr string, byName map[string]int) error {
	t, err := parseTrigger(expr, p.File)
	if err != nil {
		return errorAt(p.File, s.Loc.Line, err)
	}
	refs := []string{t.FromImage}
	if _, ok := t.cmd.(*instructions.RunCommand); ok {
		if refs, err = mountRefs(t.node); err != nil {
			return errorAt(p.File, s.Loc.Line, err)
		}
	}
	for _, ref := range refs {
		if ref == "" || strings.Contains(ref, "$") {
			continue
		}
		if i, err := p.stageRef(st, ref, byName); err == nil && i >= 0 {
			st.onbuildDeps = mergeDeps(st.onbuildDeps, []int{i})
		}
	}
	return nil
}

// mergeDeps returns the sorted union of two dependency lists.
func mergeDeps(a, b []int) []int {
	out := append([]int(nil), a...)
	for _, i := range b {
		if !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	sort.Ints(out)
	return out
}

// stageRef resolves a COPY --from / RUN --mount from= reference made in
// stage st: the index of an earlier stage, or -1 for an image reference.
func (p *Plan) stageRef(st *Stage, ref string, byName map[string]int) (int, error) {
	i, isIndex := atoi(ref)
	if isIndex {
		if i >= len(p.Stages) {
			return -1, fmt.Errorf("invalid stage index %d: the recipe has %d stages", i, len(p.Stages))
		}
	} else {
		var ok bool
		if i, ok = byName[strings.ToLower(ref)]; !ok {
			return -1, nil
		}
	}
	switch {
	case i == st.Index:
		return -1, fmt.Errorf("circular stage reference: stage %q refers to itself", ref)
	case i > st.Index:
		return -1, fmt.Errorf("forward stage reference: stage %q is defined after the current stage (line %d)", ref, p.Stages[i].Loc.Line)
	}
	return i, nil
}

// atoi parses a stage index: decimal digits only.
func atoi(s string) (int, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}

// mountRefs validates the --mount flags of a RUN node and returns their
// from= references. Mounts without variables are checked completely here
// (unknown types, bad options); mounts with variables are checked when the
// step is expanded.
func mountRefs(n *parser.Node) ([]string, error) {
	var refs []string
	for _, f := range n.Flags {
		val, ok := strings.CutPrefix(f, "--mount=")
		if !ok {
			continue
		}
		if strings.Contains(val, "$") {
			if ref := mountFrom(val); ref != "" {
				refs = append(refs, ref)
			}
			continue
		}
		c, err := instructions.ParseCommand(&parser.Node{Value: "run", Flags: []string{f}, Next: &parser.Node{Value: "true"}})
		if err != nil {
			return nil, err
		}
		run := c.(*instructions.RunCommand)
		if err := run.Expand(func(w string) (string, error) { return w, nil }); err != nil {
			return nil, err
		}
		for _, m := range instructions.GetMounts(run) {
			if m.From != "" {
				refs = append(refs, m.From)
			}
		}
	}
	return refs, nil
}

// mountFrom returns the from= value of a mount option list, or "".
func mountFrom(val string) string {
	for _, field := range strings.Split(val, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if ok && strings.EqualFold(k, "from") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// selectTarget sets Target from a stage name or index ("" = last stage)
// and Needed from the transitive closure of Deps.
func (p *Plan) selectTarget(target string) error {
	p.Target = len(p.Stages) - 1
	if target != "" {
		i, ok := p.LookupStage(target)
		if !ok {
			return errorf(Location{File: p.File}, "target stage %q not found", target)
		}
		p.Target = i
	}
	p.Needed = make([]bool, len(p.Stages))
	var mark func(int)
	mark = func(i int) {
		if p.Needed[i] {
			return
		}
		p.Needed[i] = true
		for _, d := range p.Stages[i].Deps {
			mark(d)
		}
	}
	mark(p.Target)
	return nil
}

// LookupStage returns the index of the stage named ref (case-insensitive)
// or, when ref is a decimal number, the stage with that index.
func (p *Plan) LookupStage(ref string) (int, bool) {
	for _, st := range p.Stages {
		if st.Name != "" && strings.EqualFold(st.Name, ref) {
			return st.Index, true
		}
	}
	if i, ok := atoi(ref); ok && i < len(p.Stages) {
		return i, true
	}
	return -1, false
}

// firstField is the first word of s ("" when none).
func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}
