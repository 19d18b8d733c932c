package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lading-build/lading/internal/testutil"
)

// TestDiskFullDuringBuild builds on a root that is a small tmpfs: once
// the disk fills in a RUN step and once while the step's layer blob is
// written. Each build fails with a clear error; after the disk grows, the
// next build succeeds, exports an image whose blobs all match their
// digests, and lading check finds nothing wrong.
func TestDiskFullDuringBuild(t *testing.T) {
	testutil.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	testutil.CheckNoMounts(t, filepath.Dir(root))
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=20m,mode=0700"); err != nil {
		t.Skipf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(root, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", root, err)
		}
	})
	for _, tc := range []struct{ name, run string }{
		// 30 MiB do not fit in the snapshot.
		{"in RUN", "dd if=/dev/urandom of=/big bs=1M count=30"},
		// 12 MiB fit in the snapshot, but not again as the layer blob.
		{"in the layer blob", "dd if=/dev/urandom of=/big bs=1M count=12"},
	} {
		dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN "+tc.run+" 2>&1\n")
		r := lading(t, "", "build", "--root", root, "--progress", "plain", dir)
		t.Logf("%s: %s", tc.name, lastLine(r.stderr))
		if r.code == 0 {
			t.Fatalf("%s: a build that fills the disk succeeded", tc.name)
		}
		if !strings.Contains(r.stderr, "no space left on device") && !strings.Contains(r.stderr, "No space left on device") {
			t.Errorf("%s: the error does not say the disk is full:\n%s", tc.name, r.stderr)
		}
		if m := testutil.MountsUnder(t, root); len(m) != 1 {
			t.Errorf("%s: mounts left under the root: %v", tc.name, m)
		}
	}

	if err := syscall.Mount("tmpfs", root, "tmpfs", syscall.MS_REMOUNT, "size=200m,mode=0700"); err != nil {
		t.Fatalf("growing the tmpfs: %v", err)
	}
	dir := busyboxContext(t, "FROM scratch\nCOPY rootfs/ /\nRUN dd if=/dev/urandom of=/big bs=1M count=12 2>&1 && echo done > /done\n")
	out := filepath.Join(t.TempDir(), "image.tar")
	r := lading(t, "", "build", "--root", root, "--progress", "plain", "--output", "type=oci,dest="+out, dir)
	if r.code != 0 {
		t.Fatalf("build after the disk grew: %s", r.stderr)
	}
	checkArchiveBlobs(t, out)
	if r := lading(t, "", "check", "--root", root); r.code != 0 {
		t.Errorf("lading check after a full disk: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
