package parser

import (
	"regexp"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Warning is a finding of BuildKit's Dockerfile linter rules (what
// `docker build --check` reports).
type Warning struct {
	Rule string // the BuildKit rule name, e.g. "UndefinedVar"
	Loc  Location
	Msg  string
	URL  string // the rule's documentation
}

// String reads "FILE:LINE: warning: Rule: message".
func (w Warning) String() string {
	return w.Loc.String() + ": warning: " + w.Rule + ": " + w.Msg
}

// LintConfig is the recipe's "# check=" directive: the rules it skips
// (skip=A,B or skip=all) and whether warnings fail the build (error=true).
type LintConfig struct {
	SkipRules []string
	SkipAll   bool
	Error     bool
}

// lintState collects warnings while parsing and linting.
type lintState struct {
	cfg      LintConfig
	warnings []Warning
}

// newLintState reads the "# check=" directive of a recipe.
func newLintState(data []byte, file string) (*lintState, error) {
	ls := &lintState{}
	v, _, rng, ok := parser.ParseDirective("check", data)
	if !ok {
		return ls, nil
	}
	c, err := linter.ParseLintOptions(v)
	if err != nil {
		line := 1
		if len(rng) > 0 {
			line = rng[0].Start.Line
		}
		return nil, errorf(Location{File: file, Line: line}, "invalid # check directive: %w", err)
	}
	ls.cfg = LintConfig{SkipRules: c.SkipRules, SkipAll: c.SkipAll, Error: c.ReturnAsError}
	return ls, nil
}

// linter returns a BuildKit linter that records into ls with locations in
// file; nil ls gives a silent one.
func (ls *lintState) linter(file string) *linter.Linter {
	if ls == nil {
		return linter.New(&linter.Config{SkipAll: true})
	}
	return linter.New(&linter.Config{
		SkipRules: ls.cfg.SkipRules,
		SkipAll:   ls.cfg.SkipAll,
		Warn: func(rule, _, url, msg string, loc []parser.Range) {
			line := 0
			if len(loc) > 0 {
				line = loc[0].Start.Line
			}
			ls.warnings = append(ls.warnings, Warning{Rule: rule, Loc: Location{File: file, Line: line}, Msg: msg, URL: url})
		},
	})
}

// at is a BuildKit location for line.
func at(line int) []parser.Range {
	return []parser.Range{{Start: parser.Position{Line: line}, End: parser.Position{Line: line}}}
}

// LintConfig returns the recipe's "# check=" settings.
func (p *Plan) LintConfig() LintConfig {
	if p.lint == nil {
		return LintConfig{}
	}
	return p.lint.cfg
}

// Lint runs BuildKit's Dockerfile linter rules over the recipe and
// returns the warnings, in recipe order, without the rules the "# check="
// directive skips. baseEnv gives the ENV of a stage's base image (known
// is false when it is not at hand, and then no variable of that stage is
// reported undefined); it may be nil. The rules that need a build
// (CopyIgnoredFile, InvalidBaseImagePlatform) are not run.
func (p *Plan) Lint(baseEnv func(st *Stage) (env []string, known bool)) []Warning {
	ls := &lintState{}
	if p.lint != nil {
		ls.cfg = p.lint.cfg
		ls.warnings = append(ls.warnings, p.lint.warnings...)
	}
	l := ls.linter(p.File)
	p.lintCasing(l)
	for _, st := range p.Stages {
		if st.Name == "context" || st.Name == "scratch" {
			l.Run(&linter.RuleReservedStageName, at(st.Loc.Line), linter.RuleReservedStageName.Format(st.Name))
		}
		p.lintFrom(l, st)
		p.lintStage(l, st, baseEnv)
	}
	sortWarnings(ls.warnings)
	return ls.warnings
}

// lintCasing applies ConsistentInstructionCasing: every instruction is
// written in the case most instructions use.
func (p *Plan) lintCasing(l *linter.Linter) {
	type word struct {
		text string
		line int
	}
	var words []word
	for _, st := range p.Stages {
		words = append(words, word{st.fromWord, st.Loc.Line})
		for _, s := range st.Steps {
			if f := strings.Fields(s.Text); len(f) > 0 {
				words = append(words, word{f[0], s.Loc.Line})
			}
		}
	}
	lower, upper := 0, 0
	for _, w := range words {
		switch w.text {
		case strings.ToLower(w.text):
			lower++
		case strings.ToUpper(w.text):
			upper++
		}
	}
	for _, w := range words {
		want := strings.ToUpper(w.text)
		if lower > upper {
			want = strings.ToLower(w.text)
		}
		if w.text != "" && w.text != want {
			l.Run(&linter.RuleConsistentInstructionCasing, at(w.line), linter.RuleConsistentInstructionCasing.Format(w.text, want))
		}
	}
}

var (
	secretKey  = regexp.MustCompile(`(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)`)
	allowedKey = regexp.MustCompile(`(?i)(?:_|^)(?:public|file|version)(?:_|$)`)
)

// lintStage applies the rules that look at one stage's instructions.
func (p *Plan) lintStage(l *linter.Linter, st *Stage, baseEnv func(*Stage) ([]string, bool)) {
	env, known := p.stageBaseEnv(st, baseEnv)
	declared := map[string]bool{}
	shellSet := p.stageShellSet(st)
	once := map[string]int{}
	workdirSet := false
	for _, s := range st.Steps {
		line := at(s.Loc.Line)
		switch c := s.cmd.(type) {
		case *instructions.CmdCommand, *instructions.EntrypointCommand, *instructions.HealthCheckCommand:
			name := strings.ToUpper(s.cmd.Name())
			if prev, ok := once[name]; ok {
				l.Run(&linter.RuleMultipleInstructionsDisallowed, at(prev), linter.RuleMultipleInstructionsDisallowed.Format(name))
			}
			once[name] = s.Loc.Line
			if shellForm(c) && !shellSet {
				l.Run(&linter.RuleJSONArgsRecommended, line, linter.RuleJSONArgsRecommended.Format(name))
			}
		case *instructions.ShellCommand:
			shellSet = true
		case *instructions.ExposeCommand:
			lintExpose(l, line, c.Ports)
		case *instructions.MaintainerCommand:
			// reported by the instruction parser
		case *instructions.WorkdirCommand:
			if !workdirSet && !strings.HasPrefix(c.Path, "/") && !strings.HasPrefix(c.Path, "$") {
				l.Run(&linter.RuleWorkdirRelativePath, line, linter.RuleWorkdirRelativePath.Format(c.Path))
			}
			workdirSet = true
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if kv.NoDelim {
					l.Run(&linter.RuleLegacyKeyValueFormat, line, linter.RuleLegacyKeyValueFormat.Format("ENV"))
				}
				if secretKey.MatchString(kv.Key) && !allowedKey.MatchString(kv.Key) {
					l.Run(&linter.RuleSecretsUsedInArgOrEnv, line, linter.RuleSecretsUsedInArgOrEnv.Format("ENV", kv.Key))
				}
			}
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				if kv.NoDelim {
					l.Run(&linter.RuleLegacyKeyValueFormat, line, linter.RuleLegacyKeyValueFormat.Format("LABEL"))
				}
			}
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				if secretKey.MatchString(kv.Key) && !allowedKey.MatchString(kv.Key) {
					l.Run(&linter.RuleSecretsUsedInArgOrEnv, line, linter.RuleSecretsUsedInArgOrEnv.Format("ARG", kv.Key))
				}
			}
		}
		if known {
			p.lintUndefined(l, s, &env, declared)
		}
	}
}

// lintFrom applies the rules about a FROM line: UndefinedArgInFrom (a
// variable that is neither a global ARG nor an automatic one),
// RedundantTargetPlatform (--platform=$TARGETPLATFORM) and
// FromPlatformFlagConstDisallowed (a constant --platform the stage name
// does not mention).
func (p *Plan) lintFrom(l *linter.Linter, st *Stage) {
	line := at(st.Loc.Line)
	known := map[string]bool{}
	for k := range p.GlobalArgs {
		known[k] = true
	}
	for k := range p.metaArgs {
		known[k] = true
	}
	lex := shell.NewLex(p.escapeToken())
	rec := &recordingEnv{EnvGetter: mapEnv(p.GlobalArgs)}
	_, _, _ = lex.ProcessWord(st.rawFrom, rec)
	if st.rawPlatform != "" {
		_, _, _ = lex.ProcessWord(st.rawPlatform, rec)
	}
	for _, name := range rec.missed {
		if !known[name] {
			l.Run(&linter.RuleUndefinedArgInFrom, line, linter.RuleUndefinedArgInFrom.Format(name, ""))
		}
	}
	switch plat := st.rawPlatform; {
	case plat == "":
	case plat == "$TARGETPLATFORM" || plat == "${TARGETPLATFORM}":
		l.Run(&linter.RuleRedundantTargetPlatform, line, linter.RuleRedundantTargetPlatform.Format(plat))
	case !strings.Contains(plat, "$"):
		pl, err := parsePlatform(plat)
		if err == nil && !strings.Contains(st.Name, pl.os) && !strings.Contains(st.Name, pl.arch) {
			l.Run(&linter.RuleFromPlatformFlagConstDisallowed, line, linter.RuleFromPlatformFlagConstDisallowed.Format(plat))
		}
	}
}

// lintExpose applies ExposeProtoCasing and ExposeInvalidFormat (an IP or
// host port, which EXPOSE ignores) to the ports of an EXPOSE as written.
func lintExpose(l *linter.Linter, line []parser.Range, ports []string) {
	for _, port := range ports {
		if strings.Contains(port, "$") {
			continue
		}
		if _, proto, ok := strings.Cut(port, "/"); ok && proto != strings.ToLower(proto) {
			l.Run(&linter.RuleExposeProtoCasing, line, linter.RuleExposeProtoCasing.Format(port))
		}
		if strings.Contains(port, ":") {
			l.Run(&linter.RuleExposeInvalidFormat, line, linter.RuleExposeInvalidFormat.Format(port))
		}
	}
}

// shellForm reports whether a CMD or ENTRYPOINT is in shell form.
func shellForm(c instructions.Command) bool {
	switch c := c.(type) {
	case *instructions.CmdCommand:
		return c.PrependShell
	case *instructions.EntrypointCommand:
		return c.PrependShell
	}
	return false
}

// stageShellSet reports whether a SHELL instruction comes before st in
// its chain of base stages.
func (p *Plan) stageShellSet(st *Stage) bool {
	for b := st.FromStage; b >= 0; b = p.Stages[b].FromStage {
		for _, s := range p.Stages[b].Steps {
			if _, ok := s.cmd.(*instructions.ShellCommand); ok {
				return true
			}
		}
	}
	return false
}

// stageBaseEnv is the environment a stage starts with: PATH for scratch,
// its base image's ENV (from baseEnv), or the ENV and ARGs its base stage
// ends with. known is false when that is not at hand.
func (p *Plan) stageBaseEnv(st *Stage, baseEnv func(*Stage) ([]string, bool)) (env []string, known bool) {
	if st.FromStage >= 0 {
		base := p.Stages[st.FromStage]
		env, known = p.stageBaseEnv(base, baseEnv)
		if !known {
			return nil, false
		}
		declared := map[string]bool{}
		for _, s := range base.Steps {
			env = p.stepEnv(s, env, declared)
		}
		return env, true
	}
	if strings.EqualFold(st.From, "scratch") {
		return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, true
	}
	if baseEnv == nil {
		return nil, false
	}
	return baseEnv(st)
}

// stepEnv returns env after step s: ENV sets variables, ARG declares them
// (recorded in declared, with their value when they have one).
func (p *Plan) stepEnv(s *Step, env []string, declared map[string]bool) []string {
	switch c := s.cmd.(type) {
	case *instructions.EnvCommand:
		out := append([]string(nil), env...)
		for _, kv := range c.Env {
			out = append(out, kv.Key+"=")
		}
		return out
	case *instructions.ArgCommand:
		out := append([]string(nil), env...)
		for _, kv := range c.Args {
			declared[kv.Key] = true
			out = append(out, kv.Key+"=")
		}
		return out
	}
	return env
}

// lintUndefined applies UndefinedVar to step s: every variable its words
// use must be set by the base, an ENV or an ARG before it (RUN, CMD and
// ENTRYPOINT command text is the shell's business and not checked).
func (p *Plan) lintUndefined(l *linter.Linter, s *Step, env *[]string, declared map[string]bool) {
	rec := &recordingEnv{EnvGetter: sliceEnv(*env)}
	if cmd, err := s.reparse(); err == nil {
		if a, ok := cmd.(*instructions.ArgCommand); ok {
			lex := shell.NewLex(p.escapeToken())
			for _, kv := range a.Args {
				if kv.Value != nil {
					_, _, _ = lex.ProcessWord(*kv.Value, rec)
				}
			}
		} else {
			_ = p.expandCommand(cmd, rec, nil)
		}
	}
	*env = p.stepEnv(s, *env, declared)
	for _, name := range rec.missed {
		if declared[name] {
			continue
		}
		l.Run(&linter.RuleUndefinedVar, at(s.Loc.Line), linter.RuleUndefinedVar.Format(name, ""))
	}
}

// recordingEnv is an environment that remembers the names it lacked.
type recordingEnv struct {
	shell.EnvGetter
	missed []string
}

func (r *recordingEnv) Get(name string) (string, bool) {
	v, ok := r.EnvGetter.Get(name)
	if !ok {
		for _, m := range r.missed {
			if m == name {
				return v, ok
			}
		}
		r.missed = append(r.missed, name)
	}
	return v, ok
}

// sortWarnings orders warnings by line, stably.
func sortWarnings(ws []Warning) {
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && ws[j].Loc.Line < ws[j-1].Loc.Line; j-- {
			ws[j], ws[j-1] = ws[j-1], ws[j]
		}
	}
}
