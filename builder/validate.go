package builder

import (
	"maps"

	"github.com/lading-build/lading/copier"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/runtime"
)

// validate checks every step of the stages to build before any step
// runs, so that a bad flag on line 40 fails the build before the RUN on
// line 3 has run: it expands each step as the build will, and runs the
// checks of its dispatch that need no filesystem (flag values, ports,
// signals, mounts, required secrets, expansion limits).
//
// Variables a base image may define are not known yet: a step whose
// expansion reads one is left to be checked when it runs. Variables set
// by the recipe's own ENV, and every variable of a stage built on
// scratch, are known.
func (b *build) validate() error {
	states := make([]*check, len(b.plan.Stages))
	for i, st := range b.plan.Stages {
		if !b.plan.Needed[i] {
			continue
		}
		c := b.newCheck(st, states)
		states[i] = c
		for _, step := range st.Steps {
			if err := c.step(step); err != nil {
				return err
			}
			if n, isRun := step.RunNetwork(); isRun {
				b.hasRun = true
				if net, err := runNetwork(step, n, b.opts); err == nil && net == runtime.NetworkDefault {
					b.defaultNet = true
				}
			}
		}
	}
	return nil
}

// check is the state validate keeps for one stage: a stage on a config
// that holds only what the recipe set, and which variables have values
// known before the build.
type check struct {
	s *stage
	// known is set when the stage's base defines no variable that the
	// recipe does not: scratch, or a stage of the recipe built on it
	// without ONBUILD triggers.
	known bool
	// set holds the variables set by ENV to known values; unsure those
	// set to values that are not known.
	set, unsure map[string]bool
}

func (b *build) newCheck(st *parser.Stage, states []*check) *check {
	// A parent stage's ONBUILD triggers run first in this one: after
	// them, only this stage's own ENV values are known.
	if st.FromStage >= 0 {
		if p := states[st.FromStage]; p != nil && len(p.s.res.cfg.Config.OnBuild) == 0 {
			return &check{
				s:      &stage{b: b, st: st, res: p.s.res.clone(), shell: p.s.shell},
				known:  p.known,
				set:    maps.Clone(p.set),
				unsure: maps.Clone(p.unsure),
			}
		}
	}
	_, _, named := b.namedContext(st.From)
	known := isScratch(st) && !named
	res := &stageResult{cfg: b.scratchConfig(st)}
	if !known {
		res.cfg.Config.Env = nil
	}
	return &check{
		s:      &stage{b: b, st: st, res: res, shell: []string{"/bin/sh", "-c"}},
		known:  known,
		set:    map[string]bool{},
		unsure: map[string]bool{},
	}
}

// sure reports whether every variable in refs has a known value.
func (c *check) sure(refs []string) bool {
	for _, r := range refs {
		if c.unsure[r] || !c.known && !c.set[r] {
			return false
		}
	}
	return true
}

// step checks one step and records what it sets.
func (c *check) step(step *parser.Step) error {
	s := c.s
	cmd, refs, err := s.b.plan.ExpandRefs(step, s.expandEnv())
	sure := c.sure(refs)
	if err != nil {
		if sure {
			return stepErr(step, err)
		}
		// The values the build will see may expand fine.
		c.unsureOf(step)
		return nil
	}
	switch cmd := cmd.(type) {
	case *parser.Arg:
		s.declareArgs(cmd)
		for _, kv := range cmd.Args {
			c.unsure[kv.Key] = !sure
		}
		return nil
	case *parser.Env:
		for _, kv := range cmd.Vars {
			c.set[kv.Key], c.unsure[kv.Key] = true, !sure
		}
		return s.meta(cmd) // ENV cannot fail
	case *parser.Shell:
		return s.meta(cmd)
	}
	if !sure {
		return nil
	}
	if err := c.dispatch(cmd); err != nil {
		return stepErr(step, err)
	}
	return nil
}

// unsureOf marks the variables an ARG or ENV that failed to expand sets.
func (c *check) unsureOf(step *parser.Step) {
	names, env := step.Sets()
	for _, k := range names {
		c.unsure[k] = true
		if env {
			c.set[k] = true
		}
	}
}

// dispatch runs the checks of an expanded step that has known values.
func (c *check) dispatch(cmd parser.Command) error {
	s := c.s
	switch cmd := cmd.(type) {
	case *parser.Run:
		// checkNetwork has seen to --network.
		if _, _, err := s.runArgs(cmd); err != nil {
			return err
		}
		for _, mt := range cmd.Mounts {
			if err := s.b.checkMount(mt); err != nil {
				return err
			}
		}
		return nil
	case *parser.Copy:
		if len(cmd.Heredocs) > 0 && cmd.From != "" {
			return errCopyFromHeredoc
		}
		req := s.copyRequest(cmd)
		if cmd.From == "" && len(cmd.Heredocs) == 0 && s.b.cacheFor(s) != nil && localOnly(req) {
			s.b.prefetched = append(s.b.prefetched, req)
		}
		return copier.Check(req)
	case *parser.Add:
		return copier.Check(s.addRequest(cmd))
	case *parser.Workdir:
		return nil // made in the rootfs when it runs
	}
	return s.meta(cmd)
}
