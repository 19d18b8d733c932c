package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/lading-build/lading/runtime"
)

// parseSecurityOpts turns --security-opt values into the seccomp setting
// of RUN steps: "" (the default profile), runtime.SeccompUnconfined, or
// the text of a profile file in Docker's JSON format.
func parseSecurityOpts(opts []string) (string, error) {
	seccomp := ""
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			k, v, ok = strings.Cut(o, ":") // Docker's older spelling
		}
		if !ok || k != "seccomp" || v == "" {
			return "", fmt.Errorf("--security-opt %q: want seccomp=unconfined or seccomp=PROFILE.json", o)
		}
		if v == runtime.SeccompUnconfined {
			seccomp = v
			continue
		}
		b, err := os.ReadFile(v)
		if err != nil {
			return "", fmt.Errorf("--security-opt: reading seccomp profile: %w", err)
		}
		if err := runtime.CheckSeccomp(string(b)); err != nil {
			return "", fmt.Errorf("--security-opt: %s: %w", v, err)
		}
		seccomp = string(b)
	}
	return seccomp, nil
}
