// Package envlist handles environments as KEY=VALUE lists.
package envlist

import "strings"

// Merge returns env with one entry per key: the last value given, at
// the place of the key's first entry (as Docker builds a container's
// environment).
func Merge(env []string) []string {
	out := make([]string, 0, len(env))
	index := make(map[string]int, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}
