package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestResolveCgroups(t *testing.T) {
	hybridMounts := `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	tests := []struct {
		name, procCg, mountinfo string
		v1                      map[string]string
		v2                      string
		useV1                   bool
		wantErr                 string
	}{{
		name: "hybrid",
		procCg: "9:name=systemd:/ci\n8:pids:/ci/job\n4:memory:/process_api/5b8c\n" +
			"1:cpu,cpuacct:/\n0::/ci\n",
		mountinfo: hybridMounts,
		v1: map[string]string{
			"pids":    "/sys/fs/cgroup/pids/ci/job",
			"memory":  "/sys/fs/cgroup/memory/process_api/5b8c",
			"cpu":     "/sys/fs/cgroup/cpu,cpuacct",
			"cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
		},
		v2:    "/sys/fs/cgroup/unified/ci",
		useV1: true,
	}, {
		name:      "unified",
		procCg:    "0::/user.slice/user-1000.slice/user@1000.service/app.slice/lading.scope\n",
		mountinfo: "25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
		v1:        map[string]string{},
		v2:        "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/lading.scope",
	}, {
		// A container without a cgroup namespace: the hierarchy is a
		// bind mount of its own cgroup.
		name:      "bind-mounted subtree",
		procCg:    "0::/kubepods/pod1/ctr\n",
		mountinfo: "700 690 0:22 /kubepods/pod1/ctr /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n",
		v1:        map[string]string{},
		v2:        "/sys/fs/cgroup",
	}, {
		name:      "subtree below the mount root",
		procCg:    "0::/kubepods/pod1/ctr/sub\n",
		mountinfo: "700 690 0:22 /kubepods/pod1/ctr /sys/fs/cgroup rw - cgroup2 cgroup rw\n",
		v1:        map[string]string{},
		v2:        "/sys/fs/cgroup/sub",
	}, {
		name:      "escaped mount point",
		procCg:    "0::/a b\n",
		mountinfo: `25 1 0:22 / /mnt/cg\040v2 rw - cgroup2 cgroup2 rw` + "\n",
		v1:        map[string]string{},
		v2:        "/mnt/cg v2/a b",
	}, {
		name:      "outside the mounted subtree",
		procCg:    "0::/other\n",
		mountinfo: "700 690 0:22 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup rw\n",
		wantErr:   "outside",
	}, {
		name:      "root prefix is not a path prefix",
		procCg:    "0::/kubepods/pod10\n",
		mountinfo: "700 690 0:22 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup rw\n",
		wantErr:   "outside",
	}, {
		name:      "nothing mounted",
		procCg:    "0::/\n",
		mountinfo: "22 1 0:21 / /proc rw - proc proc rw\n",
		wantErr:   "no cgroup",
	}, {
		name:      "garbage",
		procCg:    "nonsense\n",
		mountinfo: hybridMounts,
		wantErr:   "bad /proc/self/cgroup",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveCgroups(tt.procCg, tt.mountinfo)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.v1) != fmt.Sprint(tt.v1) || got.v2 != tt.v2 {
				t.Errorf("got v1 %v v2 %q, want v1 %v v2 %q", got.v1, got.v2, tt.v1, tt.v2)
			}
			files := limitFilesV1(Limits{Memory: 1 << 30, Pids: 10, CPUs: 1})
			if u := got.useV1(files); u != tt.useV1 {
				t.Errorf("useV1 = %v, want %v", u, tt.useV1)
			}
		})
	}
}

// TestOwnCgroupsReadOnce checks that ownCgroups reads lading's cgroups
// once per process: later calls return the first set, the one a fresh
// read finds (v1 only: on v2 a run with limits may have moved this
// process into a leaf since).
func TestOwnCgroupsReadOnce(t *testing.T) {
	first, err := ownCgroups()
	if err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	again, err := ownCgroups()
	if err != nil || again != first {
		t.Errorf("second call: %p, %v; want the first set %p", again, err, first)
	}
	fresh, err := readOwnCgroups()
	must(t, err)
	if fmt.Sprint(fresh.v1) != fmt.Sprint(first.v1) {
		t.Errorf("v1 cgroups %v, a fresh read finds %v", first.v1, fresh.v1)
	}
}

func TestCgroupOwner(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		ok   bool
	}{
		{"lading-123-0123456789abcdef", 123, true},
		{"lading-123-0123456789abcde", 0, false},
		{"lading-123-0123456789abcdeg", 0, false},
		{"lading-x-0123456789abcdef", 0, false},
		{"lading-0-0123456789abcdef", 0, false},
		{"lading", 0, false},
		{"other-123-0123456789abcdef", 0, false},
	}
	for _, tt := range tests {
		pid, ok := cgroupOwner(tt.name)
		if ok != tt.ok || (ok && pid != tt.pid) {
			t.Errorf("%s: got %d %v", tt.name, pid, ok)
		}
	}
}

// testCgroup makes a pids cgroup below this process's own, with
// pids.max set, and removes it at the end of the test.
func testCgroup(t *testing.T, max int) string {
	t.Helper()
	own, err := readOwnCgroups()
	must(t, err)
	var dir string
	files := limitFilesV1(Limits{Pids: 1})
	if own.useV1(files) {
		dir = own.v1["pids"]
	} else {
		dir = own.v2
		ctl, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if !strings.Contains(string(ctl), "pids") {
			t.Skipf("pids controller not enabled below %s", dir)
		}
	}
	dir, err = os.MkdirTemp(dir, "lading-test-")
	must(t, err)
	t.Cleanup(func() {
		// On v2 a lading that ran in it left the leaf it moved
		// itself into (see leaveHome), stale once it exited.
		removeStale(dir)
		if err := rmdirCgroup(dir); err != nil {
			t.Error(err)
		}
	})
	must(t, os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(max)), 0))
	return dir
}

// nestedChildEnv names the rootfs for the copy of this test binary that
// runs inside the test's cgroup.
const nestedChildEnv = "LADING_TEST_NESTED_ROOTFS"

// TestCgroupNested starts lading's side (this binary again) in a cgroup
// limited to 40 processes and runs a step with a limit of 1000 that
// starts 100: the step's cgroup lies below the caller's, so the caller's
// limit holds.
func TestCgroupNested(t *testing.T) {
	if root := os.Getenv(nestedChildEnv); root != "" {
		nestedChild(t, root)
		return
	}
	root := newRootfs(t)
	cg := testCgroup(t, 40)
	self, err := os.Executable()
	must(t, err)
	cmd := exec.Command(self, "-test.run=^TestCgroupNested$")
	cmd.Env = append(os.Environ(), nestedChildEnv+"="+root)
	stdin, err := cmd.StdinPipe()
	must(t, err)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	// The child waits for this line, sent once it is in the cgroup.
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	fmt.Fprintln(stdin, "go")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	t.Logf("child:\n%s", out.String())
	var count int
	for _, line := range strings.Split(out.String(), "\n") {
		if n, ok := strings.CutPrefix(line, "processes "); ok {
			count, _ = strconv.Atoi(n)
		}
	}
	if count == 0 {
		t.Fatalf("no count in the child's output")
	}
	if count > 40 {
		t.Errorf("the step saw %d processes under a caller limited to 40", count)
	}
	if peak, err := os.ReadFile(filepath.Join(cg, "pids.peak")); err == nil {
		if n, _ := strconv.Atoi(strings.TrimSpace(string(peak))); n > 40 {
			t.Errorf("pids.peak %d", n)
		}
	}
}

// nestedChild waits until the parent moved it into the test cgroup, then
// runs the step.
func nestedChild(t *testing.T, root string) {
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// Go dies when it cannot make a thread it needs: make the threads
	// now, before the step fills the cgroup. Idle threads are kept.
	spareThreads(8)
	out, errOut, err := sh(t, Spec{Rootfs: root, Limits: Limits{Pids: 1000}}, `
		# A failed fork ends the subshell, not the step.
		(i=0; while [ $i -lt 100 ]; do sleep 1000 & i=$((i+1)); done) 2>/dev/null
		set -- /proc/[0-9]*; echo processes $#`)
	if err != nil {
		t.Fatalf("%v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	fmt.Print(out)
	checkNoCgroups(t)
}

// TestStaleCgroupsRemoved leaves cgroups as a lading killed with SIGKILL
// would, one of a dead process and one of a live one: the next Run with
// limits removes the first only.
func TestStaleCgroupsRemoved(t *testing.T) {
	root := newRootfs(t)
	own, err := readOwnCgroups()
	must(t, err)
	dir := own.v2
	if own.useV1(limitFilesV1(Limits{Pids: 1})) {
		dir = own.v1["pids"]
	}
	dead := exec.Command("true")
	must(t, dead.Run())
	stale := filepath.Join(dir, fmt.Sprintf("%s%d-0123456789abcdef", cgroupPrefix, dead.Process.Pid))
	live := filepath.Join(dir, fmt.Sprintf("%s%d-fedcba9876543210", cgroupPrefix, os.Getppid()))
	for _, d := range []string{stale, live} {
		must(t, os.Mkdir(d, 0o755))
		t.Cleanup(func() { rmdirCgroup(d) })
	}
	shOK(t, Spec{Rootfs: root, Limits: Limits{Pids: 100}}, `true`)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale cgroup of dead pid %d kept: %v", dead.Process.Pid, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("cgroup of live pid %d removed: %v", os.Getppid(), err)
	}
}

// TestCreateV2 runs the v2 logic on a plain directory standing in for
// lading's cgroup: it enables only delegated controllers, in lading's
// own cgroup, and refuses limits on controllers not delegated.
func TestCreateV2(t *testing.T) {
	tests := []struct {
		name, controllers, subtree string
		limits                     Limits
		wantSubtree, wantErr       string
	}{
		{"enables", "cpu memory pids", "", Limits{Pids: 5, Memory: 1 << 20}, "+memory +pids", ""},
		{"already enabled", "memory pids", "pids", Limits{Pids: 5}, "pids", ""},
		{"not delegated", "pids", "pids", Limits{Memory: 1 << 20}, "pids", "not delegated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			own := filepath.Join(top, "own")
			must(t, os.Mkdir(own, 0o755))
			writeFile(t, filepath.Join(top, "cgroup.subtree_control"), "")
			writeFile(t, filepath.Join(own, "cgroup.controllers"), tt.controllers)
			writeFile(t, filepath.Join(own, "cgroup.subtree_control"), tt.subtree)
			cg := &cgroup{}
			err := cg.createV2(&cgroupSet{v2: own}, "lading-1-0123456789abcdef", limitFilesV2(tt.limits))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
			} else {
				must(t, err)
				if b, err := os.ReadFile(filepath.Join(own, "lading-1-0123456789abcdef", "pids.max")); err != nil || string(b) != "5" {
					t.Errorf("pids.max: %q %v", b, err)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(own, "cgroup.subtree_control")); string(b) != tt.wantSubtree {
				t.Errorf("subtree_control %q, want %q", b, tt.wantSubtree)
			}
			if b, _ := os.ReadFile(filepath.Join(top, "cgroup.subtree_control")); len(b) != 0 {
				t.Errorf("parent's subtree_control written: %q", b)
			}
		})
	}
}

// TestLeaveHome runs the v2 move of lading into a leaf on a plain
// directory standing in for its cgroup: refused while other processes
// share the cgroup, done when lading is alone.
func TestLeaveHome(t *testing.T) {
	home := t.TempDir()
	self := strconv.Itoa(os.Getpid())
	writeFile(t, filepath.Join(home, "cgroup.procs"), "1\n"+self+"\n")
	if err := leaveHome(home); err == nil || !strings.Contains(err.Error(), "other processes") {
		t.Errorf("shared cgroup: got %v", err)
	}
	writeFile(t, filepath.Join(home, "cgroup.procs"), self+"\n")
	must(t, leaveHome(home))
	entries, err := os.ReadDir(home)
	must(t, err)
	var leaves []string
	for _, e := range entries {
		if pid, ok := cgroupOwner(e.Name()); ok && pid == os.Getpid() {
			leaves = append(leaves, e.Name())
		}
	}
	if len(leaves) != 1 {
		t.Fatalf("leaves %v", leaves)
	}
	if b, _ := os.ReadFile(filepath.Join(home, leaves[0], "cgroup.procs")); string(b) != self {
		t.Errorf("leaf cgroup.procs %q, want %s", b, self)
	}
}

// spareThreads makes n OS threads that the Go runtime keeps idle.
func spareThreads(n int) {
	var locked, release sync.WaitGroup
	locked.Add(n)
	release.Add(1)
	for range n {
		go func() {
			goruntime.LockOSThread()
			locked.Done()
			release.Wait()
			goruntime.UnlockOSThread()
		}()
	}
	locked.Wait()
	release.Done()
}

// TestMemorySwapLimit: --memory limits swap as Docker does, memory and
// swap together to twice the limit (v1 memory.memsw.limit_in_bytes; v2
// memory.swap.max, swap alone, at the limit), where the kernel accounts
// swap.
func TestMemorySwapLimit(t *testing.T) {
	needRoot(t)
	const limit = 64 << 20
	cg, err := newCgroup(Limits{Memory: limit})
	if err != nil {
		t.Skipf("no memory cgroup for lading here: %v", err)
	}
	defer func() { must(t, cg.remove()) }()
	checked := 0
	for _, dir := range cg.dirs {
		for name, want := range map[string]int{memswV1: 2 * limit, swapV2: limit} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			must(t, err)
			checked++
			if got := strings.TrimSpace(string(b)); got != strconv.Itoa(want) {
				t.Errorf("%s/%s = %s, want %d", dir, name, got, want)
			}
		}
	}
	if checked == 0 {
		t.Skip("the kernel does not account swap")
	}
}
