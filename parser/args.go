package parser

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// platform is an "os/arch[/variant]" triple.
type platform struct {
	os, arch, variant string
}

func (p platform) String() string {
	if p.variant == "" {
		return p.os + "/" + p.arch
	}
	return p.os + "/" + p.arch + "/" + p.variant
}

// HostPlatform is the platform lading runs on ("linux/amd64"): the build
// platform of every build, whatever the target.
func HostPlatform() string { return hostPlatform().String() }

// NormalizePlatform parses "os/arch[/variant]" and returns it in the
// form the automatic ARGs use (aarch64 is arm64, arm64/v8 is arm64, arm is
// arm/v7).
func NormalizePlatform(s string) (string, error) {
	p, err := parsePlatform(s)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// hostPlatform is the platform lading runs on.
func hostPlatform() platform {
	p, err := parsePlatform(goruntime.GOOS + "/" + goruntime.GOARCH)
	if err != nil {
		return platform{os: goruntime.GOOS, arch: goruntime.GOARCH}
	}
	return p
}

// parsePlatform parses and normalizes "os/arch[/variant]" the way OCI
// tools spell it: x86_64 is amd64, aarch64 is arm64, arm defaults to v7 and
// arm64 drops v8.
func parsePlatform(s string) (platform, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "/")
	if len(parts) < 2 || len(parts) > 3 {
		return platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	for _, part := range parts {
		if part == "" || strings.ContainsAny(part, " \t$") {
			return platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
		}
	}
	p := platform{os: parts[0], arch: parts[1]}
	if len(parts) == 3 {
		p.variant = parts[2]
	}
	switch p.arch {
	case "x86_64", "x86-64":
		p.arch = "amd64"
	case "aarch64":
		p.arch = "arm64"
	case "armhf":
		p.arch, p.variant = "arm", "v7"
	case "armel":
		p.arch, p.variant = "arm", "v6"
	case "i386", "i686":
		p.arch = "386"
	}
	switch {
	case p.arch == "arm64" && p.variant == "v8":
		p.variant = ""
	case p.arch == "arm" && p.variant == "":
		p.variant = "v7"
	}
	return p, nil
}

// automaticArgs returns the ARGs BuildKit defines for build platform b,
// target platform t and target stage target ("" means "default"); a
// --build-arg of the same name overrides one.
func automaticArgs(b, t platform, target string, buildArgs map[string]string) map[string]string {
	if target == "" {
		target = "default"
	}
	args := map[string]string{
		"BUILDPLATFORM":   b.String(),
		"BUILDOS":         b.os,
		"BUILDOSVERSION":  "",
		"BUILDARCH":       b.arch,
		"BUILDVARIANT":    b.variant,
		"TARGETPLATFORM":  t.String(),
		"TARGETOS":        t.os,
		"TARGETOSVERSION": "",
		"TARGETARCH":      t.arch,
		"TARGETVARIANT":   t.variant,
		"TARGETSTAGE":     target,
	}
	for k := range args {
		if v, ok := buildArgs[k]; ok {
			args[k] = v
		}
	}
	return args
}

// globalArgs computes the meta ARGs declared before the first FROM, in
// order: a --build-arg value wins, else the default expanded with the ARGs
// before it; an ARG with neither stays undefined (or keeps its automatic
// value, see automaticArgs).
func globalArgs(metas []*argNode, build, plat platform, target string, buildArgs map[string]string, file string, escape rune) (map[string]string, error) {
	args := automaticArgs(build, plat, target, buildArgs)
	lex := shell.NewLex(escape)
	for _, m := range metas {
		for _, kv := range m.cmd.Args {
			if v, ok := buildArgs[kv.Key]; ok {
				args[kv.Key] = v
				continue
			}
			if kv.Value == nil {
				continue
			}
			v, err := newExpander(lex, mapEnv(args)).word(*kv.Value)
			if err != nil {
				return nil, argError(Location{File: file, Line: m.line}, kv.Key, err)
			}
			args[kv.Key] = v
		}
	}
	return args, nil
}

// argNode is an ARG instruction with its line.
type argNode struct {
	cmd  *instructions.ArgCommand
	line int
}

// resolveArg applies Docker's rule for an ARG inside a stage: a
// --build-arg value wins; an ARG without default takes the global ARG of
// that name, if any; a default is expanded with env. ok is false when the
// ARG stays without value.
func (p *Plan) resolveArg(kv instructions.KeyValuePairOptional, e *expander) (value string, ok bool, err error) {
	if v, ok := p.BuildArgs[kv.Key]; ok {
		return v, true, nil
	}
	if kv.Value == nil {
		v, ok := p.GlobalArgs[kv.Key]
		return v, ok, nil
	}
	v, err := e.word(*kv.Value)
	if err != nil {
		return "", false, err
	}
	return v, true, nil
}

// argError is the error of expanding the default of ARG key at loc.
func argError(loc Location, key string, err error) *Error {
	if errors.Is(err, ErrExpansionTooLarge) {
		return errorf(loc, "%w", err)
	}
	return errorf(loc, "expanding ARG %s: %w", key, err)
}
