package runtime

import (
	"strings"
	"testing"
)

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
