package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupParent is the directory, below each hierarchy, that holds one
// cgroup per container.
const cgroupParent = "lading"

// cpuPeriod is the CFS period in microseconds used for CPU limits.
const cpuPeriod = 100000

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

// newCgroup creates the cgroups for l, or returns nil when l sets no limit.
func newCgroup(l Limits) (cg *cgroup, err error) {
	if l == (Limits{}) {
		return nil, nil
	}
	if l.Memory < 0 || l.Pids < 0 || l.CPUs < 0 {
		return nil, fmt.Errorf("negative limit %+v", l)
	}
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	cg = &cgroup{}
	defer func() {
		if err != nil {
			cg.remove()
		}
	}()
	if isUnified() {
		return cg, cg.createV2(id, limitFilesV2(l))
	}
	return cg, cg.createV1(id, limitFilesV1(l))
}

func isUnified() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

func randomID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making cgroup name: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func limitFilesV1(l Limits) []limitFile {
	var files []limitFile
	if l.Memory > 0 {
		files = append(files, limitFile{"memory", "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)})
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
		files = append(files, limitFile{"memory", "memory.max", strconv.FormatInt(l.Memory, 10)})
	}
	if l.Pids > 0 {
		files = append(files, limitFile{"pids", "pids.max", strconv.FormatInt(l.Pids, 10)})
	}
	if l.CPUs > 0 {
		files = append(files, limitFile{"cpu", "cpu.max", fmt.Sprintf("%d %d", cpuQuota(l.CPUs), cpuPeriod)})
	}
	return files
}

func cpuQuota(cpus float64) int64 {
	q := int64(cpus * cpuPeriod)
	if q < 1000 {
		q = 1000 // the kernel's minimum quota
	}
	return q
}

// createV1 makes <hierarchy>/lading/<id> for each controller used.
func (cg *cgroup) createV1(id string, files []limitFile) error {
	made := map[string]string{}
	for _, f := range files {
		dir, ok := made[f.controller]
		if !ok {
			dir = filepath.Join(cgroupRoot, f.controller, cgroupParent, id)
			if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
				return fmt.Errorf("creating cgroup: %w", err)
			}
			if err := os.Mkdir(dir, 0o755); err != nil {
				return fmt.Errorf("creating cgroup: %w", err)
			}
			made[f.controller] = dir
			cg.dirs = append(cg.dirs, dir)
		}
		if err := writeControl(dir, f.name, f.value); err != nil {
			return err
		}
	}
	return nil
}

// createV2 makes /sys/fs/cgroup/lading/<id>, enabling the controllers
// used on the way down.
func (cg *cgroup) createV2(id string, files []limitFile) error {
	var enable []string
	for _, f := range files {
		enable = append(enable, "+"+f.controller)
	}
	parent := filepath.Join(cgroupRoot, cgroupParent)
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating cgroup: %w", err)
	}
	for _, dir := range []string{cgroupRoot, parent} {
		if err := writeControl(dir, "cgroup.subtree_control", strings.Join(enable, " ")); err != nil {
			return err
		}
	}
	dir := filepath.Join(parent, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("creating cgroup: %w", err)
	}
	cg.dirs = append(cg.dirs, dir)
	for _, f := range files {
		if err := writeControl(dir, f.name, f.value); err != nil {
			return err
		}
	}
	return nil
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
