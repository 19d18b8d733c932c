package parser

import (
	"fmt"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// Command is one expanded instruction, as Plan.Expand returns it: a
// *Run, *Copy, *Add, *Workdir, *Arg, *Env, *Label, *Expose, *User, *Cmd,
// *Entrypoint, *Volume, *StopSignal, *Healthcheck, *Shell, *Onbuild or
// *Maintainer. These are the parser's own types: the BuildKit types they
// are read from stay inside this package.
type Command interface {
	// Name is the instruction in upper case ("RUN").
	Name() string
}

// CommandLine is the argument of RUN, CMD and ENTRYPOINT.
type CommandLine struct {
	// Args is the exec form's argv, or the shell form's command line as
	// one element, to be run through SHELL.
	Args []string
	// Shell reports the shell form.
	Shell bool
	// Heredocs are the bodies of RUN <<EOF documents, in order.
	Heredocs []Heredoc
}

// Heredoc is one here-document: of RUN (Name is its delimiter) or of
// COPY/ADD (Name is the file it becomes).
type Heredoc struct {
	Name string
	Data string
	// Chomp is set for <<- documents, whose leading tabs are stripped.
	Chomp bool
}

// KeyValue is one pair of ENV or LABEL.
type KeyValue struct {
	Key, Value string
}

// ArgDecl is one ARG declaration; Value is nil without a default.
type ArgDecl struct {
	Key   string
	Value *string
}

// Mount types and cache sharing modes of RUN --mount.
const (
	MountBind   = "bind"
	MountCache  = "cache"
	MountTmpfs  = "tmpfs"
	MountSecret = "secret"
	MountSSH    = "ssh"

	SharingShared  = "shared"
	SharingPrivate = "private"
	SharingLocked  = "locked"
)

// Mount is one RUN --mount.
type Mount struct {
	Type         string // MountBind, MountCache, ...
	From         string
	Source       string
	Target       string
	ReadOnly     bool
	SizeLimit    int64
	CacheID      string
	CacheSharing string // SharingShared, SharingPrivate or SharingLocked
	Required     bool
	// Env names the environment variable of a secret; a pointer to ""
	// means the default.
	Env  *string
	Mode *uint64
	UID  *uint64
	GID  *uint64
}

type (
	// Run is RUN.
	Run struct {
		CommandLine
		Mounts []*Mount
		// Network is --network ("" when not given).
		Network string
	}
	// Copy is COPY.
	Copy struct {
		Sources  []string
		Dest     string
		Heredocs []Heredoc
		From     string
		Chown    string
		Chmod    string
		Link     bool
		Exclude  []string
		Parents  bool
	}
	// Add is ADD.
	Add struct {
		Sources    []string
		Dest       string
		Heredocs   []Heredoc
		Chown      string
		Chmod      string
		Link       bool
		Exclude    []string
		KeepGitDir bool
		Checksum   string
		Unpack     *bool // nil: the default for the source
	}
	// Workdir is WORKDIR.
	Workdir struct{ Path string }
	// Arg is ARG.
	Arg struct{ Args []ArgDecl }
	// Env is ENV.
	Env struct{ Vars []KeyValue }
	// Label is LABEL.
	Label struct{ Labels []KeyValue }
	// Expose is EXPOSE.
	Expose struct{ Ports []string }
	// User is USER.
	User struct{ User string }
	// Cmd is CMD.
	Cmd struct{ CommandLine }
	// Entrypoint is ENTRYPOINT.
	Entrypoint struct{ CommandLine }
	// Volume is VOLUME.
	Volume struct{ Volumes []string }
	// StopSignal is STOPSIGNAL.
	StopSignal struct{ Signal string }
	// Healthcheck is HEALTHCHECK; Test is ["NONE"] for HEALTHCHECK NONE.
	Healthcheck struct {
		Test                                          []string
		Interval, Timeout, StartPeriod, StartInterval time.Duration
		Retries                                       int
	}
	// Shell is SHELL.
	Shell struct{ Shell []string }
	// Onbuild is ONBUILD; Expression is the instruction it defers.
	Onbuild struct{ Expression string }
	// Maintainer is MAINTAINER.
	Maintainer struct{ Maintainer string }
)

func (*Run) Name() string         { return "RUN" }
func (*Copy) Name() string        { return "COPY" }
func (*Add) Name() string         { return "ADD" }
func (*Workdir) Name() string     { return "WORKDIR" }
func (*Arg) Name() string         { return "ARG" }
func (*Env) Name() string         { return "ENV" }
func (*Label) Name() string       { return "LABEL" }
func (*Expose) Name() string      { return "EXPOSE" }
func (*User) Name() string        { return "USER" }
func (*Cmd) Name() string         { return "CMD" }
func (*Entrypoint) Name() string  { return "ENTRYPOINT" }
func (*Volume) Name() string      { return "VOLUME" }
func (*StopSignal) Name() string  { return "STOPSIGNAL" }
func (*Healthcheck) Name() string { return "HEALTHCHECK" }
func (*Shell) Name() string       { return "SHELL" }
func (*Onbuild) Name() string     { return "ONBUILD" }
func (*Maintainer) Name() string  { return "MAINTAINER" }

// command converts an expanded BuildKit command into the parser's own.
func command(cmd instructions.Command) (Command, error) {
	switch c := cmd.(type) {
	case *instructions.RunCommand:
		r := &Run{CommandLine: commandLine(c.ShellDependantCmdLine), Network: instructions.GetNetwork(c)}
		for _, m := range instructions.GetMounts(c) {
			r.Mounts = append(r.Mounts, &Mount{
				Type: string(m.Type), From: m.From, Source: m.Source, Target: m.Target,
				ReadOnly: m.ReadOnly, SizeLimit: m.SizeLimit, CacheID: m.CacheID,
				CacheSharing: string(m.CacheSharing), Required: m.Required,
				Env: m.Env, Mode: m.Mode, UID: m.UID, GID: m.GID,
			})
		}
		return r, nil
	case *instructions.CopyCommand:
		return &Copy{
			Sources: c.SourcePaths, Dest: c.DestPath, Heredocs: sourceHeredocs(c.SourceContents),
			From: c.From, Chown: c.Chown, Chmod: c.Chmod, Link: c.Link, Exclude: c.ExcludePatterns, Parents: c.Parents,
		}, nil
	case *instructions.AddCommand:
		return &Add{
			Sources: c.SourcePaths, Dest: c.DestPath, Heredocs: sourceHeredocs(c.SourceContents),
			Chown: c.Chown, Chmod: c.Chmod, Link: c.Link, Exclude: c.ExcludePatterns,
			KeepGitDir: c.KeepGitDir != nil && *c.KeepGitDir, Checksum: c.Checksum, Unpack: c.Unpack,
		}, nil
	case *instructions.WorkdirCommand:
		return &Workdir{Path: c.Path}, nil
	case *instructions.ArgCommand:
		a := &Arg{}
		for _, kv := range c.Args {
			a.Args = append(a.Args, ArgDecl{Key: kv.Key, Value: kv.Value})
		}
		return a, nil
	case *instructions.EnvCommand:
		return &Env{Vars: keyValues(c.Env)}, nil
	case *instructions.LabelCommand:
		return &Label{Labels: keyValues(c.Labels)}, nil
	case *instructions.ExposeCommand:
		return &Expose{Ports: c.Ports}, nil
	case *instructions.UserCommand:
		return &User{User: c.User}, nil
	case *instructions.CmdCommand:
		return &Cmd{commandLine(c.ShellDependantCmdLine)}, nil
	case *instructions.EntrypointCommand:
		return &Entrypoint{commandLine(c.ShellDependantCmdLine)}, nil
	case *instructions.VolumeCommand:
		return &Volume{Volumes: c.Volumes}, nil
	case *instructions.StopSignalCommand:
		return &StopSignal{Signal: c.Signal}, nil
	case *instructions.HealthCheckCommand:
		h := &Healthcheck{}
		if c.Health != nil {
			h.Test, h.Retries = c.Health.Test, c.Health.Retries
			h.Interval, h.Timeout = c.Health.Interval, c.Health.Timeout
			h.StartPeriod, h.StartInterval = c.Health.StartPeriod, c.Health.StartInterval
		}
		return h, nil
	case *instructions.ShellCommand:
		return &Shell{Shell: c.Shell}, nil
	case *instructions.OnbuildCommand:
		return &Onbuild{Expression: c.Expression}, nil
	case *instructions.MaintainerCommand:
		return &Maintainer{Maintainer: c.Maintainer}, nil
	}
	return nil, fmt.Errorf("instruction %s is not supported", strings.ToUpper(cmd.Name()))
}

func commandLine(cl instructions.ShellDependantCmdLine) CommandLine {
	out := CommandLine{Args: cl.CmdLine, Shell: cl.PrependShell}
	for _, f := range cl.Files {
		out.Heredocs = append(out.Heredocs, Heredoc{Name: f.Name, Data: f.Data, Chomp: f.Chomp})
	}
	return out
}

func sourceHeredocs(contents []instructions.SourceContent) []Heredoc {
	var out []Heredoc
	for _, c := range contents {
		out = append(out, Heredoc{Name: c.Path, Data: c.Data})
	}
	return out
}

func keyValues(kvs instructions.KeyValuePairs) []KeyValue {
	out := make([]KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, KeyValue{Key: kv.Key, Value: kv.Value})
	}
	return out
}
