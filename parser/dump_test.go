package parser

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// dump renders a Plan as stable, readable text for golden files.
func dump(p *Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "file: %s\n", p.File)
	fmt.Fprintf(&b, "escape: %c\n", p.escapeToken())
	fmt.Fprintf(&b, "target: %d\n", p.Target)
	b.WriteString("global args:\n")
	b.WriteString(dumpMap(p.GlobalArgs))
	if len(p.BuildArgs) > 0 {
		b.WriteString("build args:\n")
		b.WriteString(dumpMap(p.BuildArgs))
	}
	for _, st := range p.Stages {
		fmt.Fprintf(&b, "stage %d", st.Index)
		if st.Name != "" {
			fmt.Fprintf(&b, " %q", st.Name)
		}
		fmt.Fprintf(&b, " at %s needed=%t\n", st.Loc, p.Needed[st.Index])
		fmt.Fprintf(&b, "  from: %s", st.From)
		if st.FromStage >= 0 {
			fmt.Fprintf(&b, " (stage %d)", st.FromStage)
		}
		if st.Platform != "" {
			fmt.Fprintf(&b, " platform=%s", st.Platform)
		}
		fmt.Fprintf(&b, "\n  deps: %v\n", st.Deps)
		for _, s := range st.Steps {
			fmt.Fprintf(&b, "  %d: %s\n", s.Loc.Line, s.Text)
			fmt.Fprintf(&b, "     %s\n", describe(s.cmd))
			if s.FromStage >= 0 {
				fmt.Fprintf(&b, "     from stage %d\n", s.FromStage)
			}
			if s.FromImage != "" {
				fmt.Fprintf(&b, "     from image %s\n", s.FromImage)
			}
		}
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}

func dumpMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s=%q\n", k, m[k])
	}
	return b.String()
}

// describe renders the interesting fields of a command.
func describe(cmd instructions.Command) string {
	switch c := cmd.(type) {
	case *instructions.CopyCommand:
		return fmt.Sprintf("copy from=%q src=%q dest=%q chown=%q chmod=%q link=%t parents=%t exclude=%q%s",
			c.From, c.SourcePaths, c.DestPath, c.Chown, c.Chmod, c.Link, c.Parents, c.ExcludePatterns, contents(c.SourceContents))
	case *instructions.AddCommand:
		return fmt.Sprintf("add src=%q dest=%q chown=%q chmod=%q checksum=%q%s",
			c.SourcePaths, c.DestPath, c.Chown, c.Chmod, c.Checksum, contents(c.SourceContents))
	case *instructions.RunCommand:
		s := fmt.Sprintf("run shell=%t cmd=%q network=%s", c.PrependShell, c.CmdLine, instructions.GetNetwork(c))
		for _, f := range c.Files {
			s += fmt.Sprintf(" file[%s]=%q", f.Name, f.Data)
		}
		for _, m := range instructions.GetMounts(c) {
			s += fmt.Sprintf(" mount[from=%q]", m.From)
		}
		return s
	case *instructions.CmdCommand:
		return fmt.Sprintf("cmd shell=%t %q", c.PrependShell, c.CmdLine)
	case *instructions.EntrypointCommand:
		return fmt.Sprintf("entrypoint shell=%t %q", c.PrependShell, c.CmdLine)
	case *instructions.EnvCommand:
		return "env " + kvps(c.Env)
	case *instructions.LabelCommand:
		return "label " + kvps(c.Labels)
	case *instructions.ArgCommand:
		var parts []string
		for _, kv := range c.Args {
			if kv.Value == nil {
				parts = append(parts, kv.Key)
			} else {
				parts = append(parts, fmt.Sprintf("%s=%q", kv.Key, *kv.Value))
			}
		}
		return "arg " + strings.Join(parts, " ")
	case *instructions.WorkdirCommand:
		return fmt.Sprintf("workdir %q", c.Path)
	case *instructions.UserCommand:
		return fmt.Sprintf("user %q", c.User)
	case *instructions.ExposeCommand:
		return fmt.Sprintf("expose %q", c.Ports)
	case *instructions.VolumeCommand:
		return fmt.Sprintf("volume %q", c.Volumes)
	case *instructions.ShellCommand:
		return fmt.Sprintf("shell %q", c.Shell)
	case *instructions.OnbuildCommand:
		return fmt.Sprintf("onbuild %q", c.Expression)
	case *instructions.HealthCheckCommand:
		return fmt.Sprintf("healthcheck %q interval=%s retries=%d", c.Health.Test, c.Health.Interval, c.Health.Retries)
	case *instructions.StopSignalCommand:
		return fmt.Sprintf("stopsignal %q", c.Signal)
	case *instructions.MaintainerCommand:
		return fmt.Sprintf("maintainer %q", c.Maintainer)
	}
	return fmt.Sprintf("%T", cmd)
}

func kvps(kvs instructions.KeyValuePairs) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = fmt.Sprintf("%s=%q", kv.Key, kv.Value)
	}
	return strings.Join(parts, " ")
}

func contents(cs []instructions.SourceContent) string {
	var s string
	for _, c := range cs {
		s += fmt.Sprintf(" heredoc[%s expand=%t]=%q", c.Path, c.Expand, c.Data)
	}
	return s
}
