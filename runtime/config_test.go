package runtime

import (
	"slices"
	"strings"
	"testing"
)

func TestContainerEnv(t *testing.T) {
	tests := []struct {
		env  []string
		home string
		want []string
	}{
		{nil, "/root", []string{"PATH=" + DefaultPath, "HOME=/root"}},
		{[]string{"A=1", "B=2", "A=3"}, "/", []string{"A=3", "B=2", "PATH=" + DefaultPath, "HOME=/"}},
		{[]string{"PATH=/x", "HOME=/h"}, "/root", []string{"PATH=/x", "HOME=/h"}},
		{[]string{"PATH="}, "/", []string{"PATH=", "HOME=/"}},
	}
	for _, tt := range tests {
		if got := containerEnv(tt.env, tt.home); !slices.Equal(got, tt.want) {
			t.Errorf("containerEnv(%q, %q) = %q, want %q", tt.env, tt.home, got, tt.want)
		}
	}
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		spec    Spec
		wantErr string
	}{
		{Spec{Rootfs: "/r"}, "no command"},
		{Spec{Rootfs: "r", Args: []string{"true"}}, "not an absolute path"},
		{Spec{Rootfs: "/r", Args: []string{"true"}, Cwd: "x"}, "not an absolute path"},
		{Spec{Rootfs: "/r", Args: []string{"true"}, Network: "bridge"}, "unknown network mode"},
		{Spec{Rootfs: "/r/", Args: []string{"true"}}, ""},
	}
	for _, tt := range tests {
		c, err := newConfig(tt.spec)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("newConfig(%+v): got %v, want %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.Rootfs != "/r" || c.Cwd != "/" || c.Hostname != DefaultHostname ||
			c.Network != NetworkDefault || !strings.Contains(c.Hosts, "localhost") || c.ResolvConf == "" {
			t.Errorf("defaults not filled in: %+v", c)
		}
	}
}

func TestCPUQuota(t *testing.T) {
	for _, tt := range []struct {
		cpus float64
		want int64
	}{{1, 100000}, {0.5, 50000}, {2.25, 225000}, {0.001, 1000}} {
		if got := cpuQuota(tt.cpus); got != tt.want {
			t.Errorf("cpuQuota(%v) = %d, want %d", tt.cpus, got, tt.want)
		}
	}
}
