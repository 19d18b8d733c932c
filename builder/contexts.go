package builder

import (
	"fmt"
	"os"
	"strings"
)

// namedContext looks name up among the --build-context values: it
// returns an image reference (isImage) or a directory.
func (b *build) namedContext(name string) (value string, isImage, ok bool) {
	v, ok := b.opts.Contexts[strings.ToLower(name)]
	if !ok {
		return "", false, false
	}
	if ref, found := strings.CutPrefix(v, "docker-image://"); found {
		return ref, true, true
	}
	if strings.HasPrefix(v, "oci-archive:") || strings.HasPrefix(v, "docker-archive:") {
		return v, true, true
	}
	return v, false, true
}

// contextDir checks a directory named context.
func contextDir(name, dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return "", fmt.Errorf("build context %s=%s is not a directory", name, dir)
	}
	return dir, nil
}
