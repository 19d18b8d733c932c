package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// light are the packages outside the standard library the init program
// may import: every package a Go program imports runs its initialisation
// before main, and the init is started once per RUN step.
var light = []string{
	"github.com/lading-build/lading/cmd/lading-init",
	"github.com/lading-build/lading/runtime/initproc",
	"github.com/lading-build/lading/passwd",
	"github.com/lading-build/lading/internal/userns",
	"github.com/lading-build/lading/internal/envlist",
	"golang.org/x/sys/unix",
}

func TestImportsStayLight(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command lists the imports: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if !slices.Contains(light, p) {
			t.Errorf("lading-init imports %s", p)
		}
	}
}
