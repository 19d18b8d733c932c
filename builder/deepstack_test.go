package builder_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// noMountAPIEnv makes the copy of this test binary that
// TestDeepStackParallelStages starts refuse fsopen, as a kernel before
// 6.8 (without overlay's "lowerdir+") does.
const noMountAPIEnv = "LADING_TEST_NO_MOUNT_API"

// TestDeepStackParallelStages runs RUN steps in parallel stages on a
// stack of 85 overlay layers, in a process where fsopen fails: the
// snapshotter then mounts with mount(2) and paths relative to a
// directory it enters on a thread of its own, which ends with the
// goroutine. A container forked from such a thread used to get its
// parent-death signal.
func TestDeepStackParallelStages(t *testing.T) {
	if os.Getenv(noMountAPIEnv) != "" {
		denyFsopen(t)
		deepStackBuild(t)
		return
	}
	e := newEnv(t) // root, and nothing left mounted below its directory
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestDeepStackParallelStages$", "-test.v")
	cmd.Env = append(os.Environ(), noMountAPIEnv+"=1", "TMPDIR="+e.dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("build without the mount API: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// denyFsopen makes fsopen fail with EPERM in every thread of this
// process, and in the processes it starts.
func denyFsopen(t *testing.T) {
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 4}, // syscall number
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_FSOPEN, SkipFalse: 1},
		bpf.RetConstant{Val: 0x00050000 | uint32(unix.EPERM)}, // SECCOMP_RET_ERRNO
		bpf.RetConstant{Val: 0x7fff0000},                      // SECCOMP_RET_ALLOW
	})
	if err != nil {
		t.Fatal(err)
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, r := range prog {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		t.Fatalf("installing seccomp filter: %v", errno)
	}
	if _, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC); err != unix.EPERM {
		t.Fatalf("fsopen: got %v, want EPERM", err)
	}
}

func deepStackBuild(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	const layers = 84
	files := map[string]string{}
	var recipe strings.Builder
	recipe.WriteString("FROM busybox:test AS deep\n")
	for i := range layers {
		name := fmt.Sprintf("f%02d", i)
		files[name] = name
		fmt.Fprintf(&recipe, "COPY %s /layers/\n", name)
	}
	stages := []string{"a", "b", "c", "d"}
	// Each step mounts its stack (ending a thread) while the other
	// stages' steps run.
	for _, s := range stages {
		fmt.Fprintf(&recipe, "\nFROM deep AS %s\n", s)
		for i := range 3 {
			fmt.Fprintf(&recipe, "RUN [ $(ls /layers | wc -l) -eq %d ] && i=0 && while [ $i -lt 20000 ]; do i=$((i+1)); done && echo %s > /%s%d\n", layers, s, s, i)
		}
		fmt.Fprintf(&recipe, "RUN cat /%s0 /%s1 /%s2 > /%s\n", s, s, s, s)
	}
	recipe.WriteString("\nFROM deep\n")
	for _, s := range stages {
		fmt.Fprintf(&recipe, "COPY --from=%s /%s /\n", s, s)
	}
	fmt.Fprintf(&recipe, "RUN [ \"$(cat /a /b /c /d | tr -d '\\n')\" = aaabbbcccddd ] && [ $(ls /layers | wc -l) -eq %d ]\n", layers)
	e.mustBuild(e.context(files), recipe.String())
}
