package runtime

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/internal/userns"
)

// cpuPeriod is the CFS period in microseconds used for CPU limits.
const cpuPeriod = 100000

// cgroupPrefix starts the name of every cgroup Run creates:
// lading-<pid of the lading process>-<random>. The pid lets a later run
// remove what a killed lading left behind.
const cgroupPrefix = "lading-"

// cgroup is one container's set of cgroup directories: one per v1
// controller, or a single one on the unified (v2) hierarchy.
type cgroup struct {
	dirs []string
}

// limitFile is a control file and the value written to it.
type limitFile struct {
	controller string // v1 hierarchy; ignored on v2
	name       string
	value      string
}

// newCgroup creates the cgroups for l below the cgroups lading runs in,
// or returns nil when l sets no limit.
func newCgroup(l Limits) (cg *cgroup, err error) {
	if l == (Limits{}) {
		sweepOnce.Do(sweepStale)
		return nil, nil
	}
	if l.Memory < 0 || l.Pids < 0 || l.CPUs < 0 {
		return nil, fmt.Errorf("negative limit %+v", l)
	}
	own, err := ownCgroups()
	if err != nil {
		return nil, fmt.Errorf("finding lading's own cgroup: %w", err)
	}
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s%d-%s", cgroupPrefix, os.Getpid(), id)
	cg = &cgroup{}
	defer func() {
		if err != nil {
			cg.remove()
		}
	}()
	files := limitFilesV1(l)
	if own.useV1(files) {
		err = cg.createV1(own, name, files)
	} else {
		err = cg.createV2(own, name, limitFilesV2(l))
	}
	if errors.Is(err, fs.ErrPermission) && userns.Inside() {
		err = fmt.Errorf("%w (rootless, limits need a cgroup v2 subtree delegated to you, e.g. systemd-run --user --scope -p Delegate=yes lading build ...; cgroup v1 cannot be delegated)", err)
	}
	return cg, err
}

func randomID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making cgroup name: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Memory limits follow Docker's: with --memory alone, memory and swap
// together may use twice the limit (the swap files, which exist only when
// the kernel accounts swap, come after the memory one, which v1 requires).
func limitFilesV1(l Limits) []limitFile {
	var files []limitFile
	if l.Memory > 0 {
		files = append(files,
			limitFile{"memory", "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)},
			limitFile{"memory", memswV1, strconv.FormatInt(l.Memory+min(l.Memory, math.MaxInt64-l.Memory), 10)})
	}
	if l.Pids > 0 {
		files = append(files, limitFile{"pids", "pids.max", strconv.FormatInt(l.Pids, 10)})
	}
	if l.CPUs > 0 {
		files = append(files,
			limitFile{"cpu", "cpu.cfs_period_us", strconv.Itoa(cpuPeriod)},
			limitFile{"cpu", "cpu.cfs_quota_us", strconv.FormatInt(cpuQuota(l.CPUs), 10)})
	}
	return files
}

func limitFilesV2(l Limits) []limitFile {
	var files []limitFile
	if l.Memory > 0 {
		files = append(files,
			limitFile{"memory", "memory.max", strconv.FormatInt(l.Memory, 10)},
			limitFile{"memory", swapV2, strconv.FormatInt(l.Memory, 10)})
	}
	if l.Pids > 0 {
		files = append(files, limitFile{"pids", "pids.max", strconv.FormatInt(l.Pids, 10)})
	}
	if l.CPUs > 0 {
		files = append(files, limitFile{"cpu", "cpu.max", fmt.Sprintf("%d %d", cpuQuota(l.CPUs), cpuPeriod)})
	}
	return files
}

// The swap limit files, absent where the kernel does not account swap.
const (
	memswV1 = "memory.memsw.limit_in_bytes" // memory and swap
	swapV2  = "memory.swap.max"             // swap alone
)

// writeLimit writes f in dir; a swap limit is skipped when the kernel has
// no such file.
func writeLimit(dir string, f limitFile) error {
	if f.name == memswV1 || f.name == swapV2 {
		if _, err := os.Stat(filepath.Join(dir, f.name)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	return writeControl(dir, f.name, f.value)
}

func cpuQuota(cpus float64) int64 {
	q := int64(cpus * cpuPeriod)
	if q < 1000 {
		q = 1000 // the kernel's minimum quota
	}
	return q
}

// createV1 makes <own cgroup>/<name> in the hierarchy of each
// controller used.
func (cg *cgroup) createV1(own *cgroupSet, name string, files []limitFile) error {
	made := map[string]string{}
	for _, f := range files {
		dir, ok := made[f.controller]
		if !ok {
			parent := own.v1[f.controller]
			removeStale(parent)
			dir = filepath.Join(parent, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				return fmt.Errorf("creating cgroup below lading's own %s cgroup: %w", f.controller, err)
			}
			made[f.controller] = dir
			cg.dirs = append(cg.dirs, dir)
		}
		if err := writeLimit(dir, f); err != nil {
			return err
		}
	}
	return nil
}

// v2Home is the cgroup v2 lading started in, once it has moved itself
// into a leaf below it (see leaveHome); step cgroups are made beside that
// leaf. mu also keeps concurrent runs from enabling controllers at once.
var v2Home struct {
	mu  sync.Mutex
	dir string
}

// createV2 makes <lading's cgroup>/<name>. The controllers it needs must
// be delegated to lading's cgroup (listed in its cgroup.controllers); it
// enables them in that cgroup's cgroup.subtree_control if they are not
// yet. A cgroup holding processes cannot hand controllers to children
// (its children cannot take processes), so when lading is the only
// process there it first moves itself into a leaf below; when others
// are there, the cgroup cannot be subdivided and createV2 says so. It never writes to a cgroup above
// lading's.
func (cg *cgroup) createV2(own *cgroupSet, name string, files []limitFile) error {
	v2Home.mu.Lock()
	defer v2Home.mu.Unlock()
	home := own.v2
	if v2Home.dir != "" {
		home = v2Home.dir
	}
	if home == "" {
		return errors.New("no cgroup v2 hierarchy and no v1 hierarchy for the limited controllers")
	}
	avail, err := readFields(filepath.Join(home, "cgroup.controllers"))
	if err != nil {
		return err
	}
	enabled, err := readFields(filepath.Join(home, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	var enable []string
	for _, f := range files {
		if !slices.Contains(avail, f.controller) {
			return fmt.Errorf("controller %s is not delegated to lading's cgroup %s; run lading in a cgroup that delegates it (e.g. systemd-run --scope -p Delegate=yes)", f.controller, home)
		}
		if !slices.Contains(enabled, f.controller) && !slices.Contains(enable, "+"+f.controller) {
			enable = append(enable, "+"+f.controller)
		}
	}
	// A cgroup holding processes refuses domain controllers (memory)
	// for its children (EBUSY), and with threaded ones (pids, cpu)
	// becomes a thread root, whose children cannot take processes
	// (EOPNOTSUPP): lading leaves first. The true root is exempt.
	if v2Home.dir == "" && !isRootCgroup(home) {
		procs, err := readFields(filepath.Join(home, "cgroup.procs"))
		if err != nil {
			return err
		}
		if len(procs) > 0 {
			if err := leaveHome(home); err != nil {
				return err
			}
		}
		v2Home.dir = home
	}
	if len(enable) > 0 {
		if err := writeControl(home, "cgroup.subtree_control", strings.Join(enable, " ")); err != nil {
			return err
		}
	}
	removeStale(home)
	dir := filepath.Join(home, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("creating cgroup below lading's own: %w", err)
	}
	cg.dirs = append(cg.dirs, dir)
	for _, f := range files {
		if err := writeLimit(dir, f); err != nil {
			return err
		}
	}
	return nil
}

// isRootCgroup reports whether dir is the root of a cgroup v2 hierarchy,
// which alone has no cgroup.type (a cgroup namespace's root has one).
func isRootCgroup(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "cgroup.type"))
	return errors.Is(err, fs.ErrNotExist)
}

// leaveHome moves lading, when it is the only process in cgroup home
// (besides the lading that re-executed it), into a new leaf cgroup below
// it, so that home may hand controllers to sub-cgroups. The leaf is named
// like a step cgroup, so a later run removes it once this process is
// gone.
func leaveHome(home string) error {
	procs, err := readFields(filepath.Join(home, "cgroup.procs"))
	if err != nil {
		return err
	}
	self := strconv.Itoa(os.Getpid())
	// The lading that re-executed this one (into its mount or user
	// namespace) waits in the same cgroup: it moves along.
	parent := ""
	if reexecParent(os.Getppid()) {
		parent = strconv.Itoa(os.Getppid())
	}
	for _, p := range procs {
		if p != self && p != parent {
			if comm, err := os.ReadFile("/proc/" + p + "/comm"); err == nil {
				p += " " + strings.TrimSpace(string(comm))
			}
			return fmt.Errorf("lading's cgroup %s holds other processes (%s), so it cannot be subdivided for limits; run lading in a cgroup of its own (e.g. systemd-run --scope -p Delegate=yes)", home, p)
		}
	}
	id, err := randomID()
	if err != nil {
		return err
	}
	leaf := filepath.Join(home, fmt.Sprintf("%s%d-%s", cgroupPrefix, os.Getpid(), id))
	if err := os.Mkdir(leaf, 0o755); err != nil {
		return fmt.Errorf("creating cgroup for lading itself: %w", err)
	}
	for _, p := range procs {
		if err := writeControl(leaf, "cgroup.procs", p); err != nil {
			for _, q := range procs {
				writeControl(home, "cgroup.procs", q)
			}
			unix.Rmdir(leaf)
			return fmt.Errorf("moving lading into %s: %w", leaf, err)
		}
	}
	return nil
}

// reexecParent reports whether process pid is the lading that
// re-executed this one: it has the same command line. (Its exe link is
// out of reach from lading's user namespace, rootless.)
func reexecParent(pid int) bool {
	a, err1 := os.ReadFile("/proc/self/cmdline")
	b, err2 := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err1 == nil && err2 == nil && len(a) > 0 && bytes.Equal(a, b)
}

// readFields returns the words of a control file.
func readFields(name string) ([]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading cgroup: %w", err)
	}
	return strings.Fields(string(b)), nil
}

// sweepOnce lets the first run without limits remove what killed lading
// processes left, as every run with limits does in the cgroups it uses.
var sweepOnce sync.Once

func sweepStale() {
	own, err := ownCgroups()
	if err != nil {
		return
	}
	for _, dir := range own.v1 {
		removeStale(dir)
	}
	if own.v2 != "" {
		removeStale(own.v2)
	}
}

// removeStale removes the cgroups in parent that a lading process no
// longer running left behind (killed with SIGKILL before it could clean
// up). Those still holding processes stay.
func removeStale(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, ok := cgroupOwner(e.Name())
		if !ok || !e.IsDir() || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			continue // its lading still runs (or we cannot tell)
		}
		unix.Rmdir(filepath.Join(parent, e.Name()))
	}
}

// cgroupOwner returns the pid in a name made by newCgroup.
func cgroupOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, cgroupPrefix)
	if !ok {
		return 0, false
	}
	pidText, id, ok := strings.Cut(rest, "-")
	if !ok || len(id) != 16 {
		return 0, false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(pidText)
	return pid, err == nil && pid > 0
}

func writeControl(dir, name, value string) error {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0); err != nil {
		return fmt.Errorf("setting cgroup %s: %w", name, err)
	}
	return nil
}

// add moves process pid (with all its threads) into the cgroup.
func (cg *cgroup) add(pid int) error {
	for _, dir := range cg.dirs {
		if err := writeControl(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes the cgroup directories. The container must have exited;
// the kernel may need a moment to notice that the last task is gone.
func (cg *cgroup) remove() error {
	var errs []error
	for _, dir := range cg.dirs {
		if err := rmdirCgroup(dir); err != nil {
			errs = append(errs, fmt.Errorf("removing cgroup: %w", err))
		}
	}
	cg.dirs = nil
	return errors.Join(errs...)
}

func rmdirCgroup(dir string) error {
	var err error
	for delay := time.Millisecond; delay < time.Second; delay *= 2 {
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(delay)
	}
	return fmt.Errorf("%s: %w", dir, err)
}
