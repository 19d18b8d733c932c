package parser

import (
	"errors"
	"fmt"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Expand returns the step's command with variables expanded from
// env, a "KEY=VALUE" list in which later entries win (the image config Env
// followed by the ARGs in scope). The Plan and s are not modified.
//
// Expansion follows Docker: the words of ADD, COPY, ENV, LABEL, WORKDIR,
// USER, VOLUME, STOPSIGNAL and EXPOSE and the --mount options of RUN are
// expanded; the command text of RUN, CMD and ENTRYPOINT is not (the shell
// does that); heredoc contents are expanded unless the delimiter is quoted.
// For ARG, each value is resolved by Docker's rule: the --build-arg value,
// else the global ARG of the same name when no default is given, else the
// default expanded with env; a Value left nil means the ARG has no value.
func (p *Plan) Expand(s *Step, env []string) (Command, error) {
	cmd, err := p.expand(s, env, nil)
	if err != nil {
		return nil, err
	}
	return s.convert(cmd)
}

// ExpandRefs is Expand that also returns the names of the variables the
// expansion looked up, set or not, so that a caller can tell whether it
// depends on variables it does not know.
func (p *Plan) ExpandRefs(s *Step, env []string) (Command, []string, error) {
	refs := map[string]bool{}
	cmd, err := p.expand(s, env, refs)
	names := make([]string, 0, len(refs))
	for k := range refs {
		names = append(names, k)
	}
	if err != nil {
		return nil, names, err
	}
	c, err := s.convert(cmd)
	return c, names, err
}

// convert turns the step's expanded BuildKit command into the parser's.
func (s *Step) convert(cmd instructions.Command) (Command, error) {
	c, err := command(cmd)
	if err != nil {
		return nil, errorf(s.Loc, "%s", err)
	}
	return c, nil
}

// expand returns a fresh copy of the step's BuildKit command, expanded,
// recording the variables it looks up in refs when not nil.
func (p *Plan) expand(s *Step, env []string, refs map[string]bool) (instructions.Command, error) {
	cmd, err := s.reparse()
	if err != nil {
		return nil, errorAt(s.Loc.File, s.Loc.Line, err)
	}
	envs := sliceEnv(env)
	if err := p.expandCommand(cmd, envs, refs); err != nil {
		if errors.Is(err, ErrExpansionTooLarge) {
			return nil, errorf(s.Loc, "%w", err)
		}
		return nil, errorf(s.Loc, "%s: %w", s.Text, err)
	}
	return cmd, nil
}

// ExpandWord expands the variables in word from env, a "KEY=VALUE" list in
// which later entries win, with the recipe's escape character.
func (p *Plan) ExpandWord(word string, env []string) (string, error) {
	v, err := newExpander(shell.NewLex(p.escapeToken()), sliceEnv(env)).word(word)
	if err != nil {
		return "", fmt.Errorf("expanding %q: %w", word, err)
	}
	return v, nil
}

// escapeToken returns the recipe's escape character.
func (p *Plan) escapeToken() rune {
	if p.escape == 0 {
		return '\\'
	}
	return p.escape
}

// reparse parses the step's node again, giving a Command that shares no
// memory with s.cmd.
func (s *Step) reparse() (instructions.Command, error) {
	if s.node == nil {
		return nil, fmt.Errorf("step %q was not produced by the parser", s.Text)
	}
	return instructions.ParseCommand(s.node)
}

// expandCommand expands cmd in place.
func (p *Plan) expandCommand(cmd instructions.Command, env shell.EnvGetter, refs map[string]bool) error {
	e := newExpander(shell.NewLex(p.escapeToken()), env)
	e.refs = refs
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		return p.expandArg(c, e)
	case *instructions.ExposeCommand:
		var ports []string
		for _, port := range c.Ports {
			words, err := e.words(port)
			if err != nil {
				return err
			}
			ports = append(ports, words...)
		}
		c.Ports = ports
	default:
		if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
			if err := ex.Expand(e.word); err != nil {
				return err
			}
		}
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		raw := shell.NewLex('\\')
		raw.SkipProcessQuotes = true
		e.lex = raw // the same budget for heredoc contents
		return ex.ExpandRaw(e.word)
	}
	return nil
}

// expandArg resolves the values of an ARG instruction in place.
func (p *Plan) expandArg(c *instructions.ArgCommand, e *expander) error {
	for i, kv := range c.Args {
		v, ok, err := p.resolveArg(kv, e)
		if err != nil {
			return err
		}
		c.Args[i].Value = nil
		if ok {
			c.Args[i].Value = &v
		}
	}
	return nil
}
