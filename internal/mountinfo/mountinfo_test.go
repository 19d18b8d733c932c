package mountinfo

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnescape(t *testing.T) {
	tests := []struct{ in, want string }{
		{`/plain`, `/plain`},
		{`/a\040b\134c`, `/a b\c`},
		{`/end\040`, `/end `},
		{`/short\04`, `/short\04`},
		{`/bad\089`, `/bad\089`},
		{`/over\777`, `/over\777`},
	}
	for _, tt := range tests {
		if got := Unescape(tt.in); got != tt.want {
			t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUnder(t *testing.T) {
	long := strings.Repeat("x", 100*1024) // options past bufio's default 64 KiB line
	mi := `22 1 0:21 / /proc rw - proc proc rw
30 22 0:27 / /a/b rw - tmpfs tmpfs rw
31 30 0:28 / /a/b/c\040d rw - tmpfs tmpfs rw,` + long + `
32 22 0:29 / /a/bc rw - tmpfs tmpfs rw
short line
33 31 0:30 / /a/b/c\040d/e rw - tmpfs tmpfs rw
`
	for _, dir := range []string{"/a/b", "/a/b/", "/a/./b"} {
		got, err := under(strings.NewReader(mi), dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"/a/b", "/a/b/c d", "/a/b/c d/e"}; !slices.Equal(got, want) {
			t.Errorf("under %q: %q, want %q", dir, got, want)
		}
	}
}

// TestUnderMounted mounts a tmpfs and finds it in this process's
// mountinfo, then finds nothing once it is unmounted.
func TestUnderMounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := filepath.Join(t.TempDir(), "m n")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	got, err := Under(dir)
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	if err != nil || !slices.Equal(got, []string{dir}) {
		t.Errorf("Under(%q) = %q, %v; want the tmpfs", dir, got, err)
	}
	if got, err := Under(dir); err != nil || len(got) != 0 {
		t.Errorf("after unmounting: %q, %v", got, err)
	}
}
