package builder

import (
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/parser"
)

// meta applies a config-only instruction to the stage's image config.
func (s *stage) meta(cmd parser.Command) error {
	c := &s.res.cfg.Config
	switch cmd := cmd.(type) {
	case *parser.Env:
		for _, kv := range cmd.Vars {
			c.Env = setEnv(c.Env, kv.Key, kv.Value)
		}
	case *parser.Label:
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for _, kv := range cmd.Labels {
			c.Labels[kv.Key] = kv.Value
		}
	case *parser.Expose:
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range cmd.Ports {
			ports, err := parsePorts(p)
			if err != nil {
				return err
			}
			for _, port := range ports {
				c.ExposedPorts[port] = struct{}{}
			}
		}
	case *parser.User:
		c.User = cmd.User
	case *parser.Cmd:
		c.Cmd = s.commandLine(cmd.CommandLine)
		s.cmdSet = true
	case *parser.Entrypoint:
		c.Entrypoint = s.commandLine(cmd.CommandLine)
		if !s.cmdSet {
			c.Cmd = nil
		}
	case *parser.Volume:
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		for _, v := range cmd.Volumes {
			if strings.TrimSpace(v) == "" {
				return fmt.Errorf("VOLUME specified can not be an empty string")
			}
			c.Volumes[v] = struct{}{}
		}
	case *parser.StopSignal:
		if err := validSignal(cmd.Signal); err != nil {
			return err
		}
		c.StopSignal = cmd.Signal
	case *parser.Healthcheck:
		h := cmd
		c.Healthcheck = &v1.HealthConfig{
			Test:        h.Test,
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			StartPeriod: h.StartPeriod,
			Retries:     h.Retries,
		}
		s.res.extra.HealthStartInterval = h.StartInterval
	case *parser.Shell:
		s.shell = append([]string(nil), cmd.Shell...)
		c.Shell = s.shell
	case *parser.Onbuild:
		c.OnBuild = append(c.OnBuild, cmd.Expression)
	case *parser.Maintainer:
		s.res.cfg.Author = cmd.Maintainer
	default:
		return fmt.Errorf("instruction %q is not supported", cmd.Name())
	}
	return nil
}

// commandLine turns CMD/ENTRYPOINT into argv: exec form as given, shell
// form through the stage's SHELL.
func (s *stage) commandLine(cl parser.CommandLine) []string {
	if !cl.Shell {
		return append([]string{}, cl.Args...)
	}
	args := append([]string{}, s.shell...)
	return append(args, strings.Join(cl.Args, " "))
}

func setEnv(env []string, key, val string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			out := append([]string{}, env...)
			out[i] = key + "=" + val
			return out
		}
	}
	return append(append([]string{}, env...), key+"="+val)
}

// parsePorts expands one EXPOSE word: "80", "80/udp", "8000-8002/tcp". An
// IP or host port before the container port ("127.0.0.1:8080:80") is
// ignored, as BuildKit does (its linter warns about it).
func parsePorts(spec string) ([]string, error) {
	portPart, proto, ok := strings.Cut(spec, "/")
	if i := strings.LastIndex(portPart, ":"); i >= 0 {
		portPart = portPart[i+1:]
	}
	if !ok || proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("invalid protocol %q in EXPOSE %s", proto, spec)
	}
	lo, hi, isRange := strings.Cut(portPart, "-")
	first, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || first == 0 {
		return nil, fmt.Errorf("invalid port %q in EXPOSE", spec)
	}
	last := first
	if isRange {
		last, err = strconv.ParseUint(hi, 10, 16)
		if err != nil || last < first {
			return nil, fmt.Errorf("invalid port range %q in EXPOSE", spec)
		}
	}
	var out []string
	for p := first; p <= last; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}

var signalNames = map[string]bool{
	"ABRT": true, "ALRM": true, "BUS": true, "CHLD": true, "CONT": true, "FPE": true,
	"HUP": true, "ILL": true, "INT": true, "IO": true, "KILL": true, "PIPE": true,
	"PROF": true, "PWR": true, "QUIT": true, "SEGV": true, "STKFLT": true, "STOP": true,
	"SYS": true, "TERM": true, "TRAP": true, "TSTP": true, "TTIN": true, "TTOU": true,
	"URG": true, "USR1": true, "USR2": true, "VTALRM": true, "WINCH": true, "XCPU": true, "XFSZ": true,
}

// validSignal accepts what Docker accepts for STOPSIGNAL: a number, a name
// with or without SIG, or SIGRTMIN+n.
func validSignal(sig string) error {
	if n, err := strconv.Atoi(sig); err == nil {
		if n > 0 && n <= 64 {
			return nil
		}
	}
	name := strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	if signalNames[name] || strings.HasPrefix(name, "RTMIN") || strings.HasPrefix(name, "RTMAX") {
		return nil
	}
	return fmt.Errorf("invalid signal: %s", sig)
}
