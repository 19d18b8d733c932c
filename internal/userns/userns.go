// Package userns tells whether this process runs in a user namespace, as
// lading does in rootless mode.
package userns

import (
	"os"
	"strings"
	"sync"
)

// Inside reports whether this process runs in a user namespace other
// than the initial one, whose uid map alone covers every id.
var Inside = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) != 3 || f[0] != "0" || f[1] != "0" || f[2] != "4294967295"
})
