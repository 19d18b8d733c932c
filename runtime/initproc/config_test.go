package initproc

import (
	"slices"
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
