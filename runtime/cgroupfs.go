package runtime

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/lading-build/lading/internal/mountinfo"
)

// cgroupSet is where lading's own cgroups are: the directory of its
// cgroup in each mounted v1 hierarchy, by controller, and in the v2
// hierarchy ("" when there is none).
type cgroupSet struct {
	v1 map[string]string
	v2 string
}

// useV1 reports whether the controllers of files are all on v1
// hierarchies (cgroup v1, or the hybrid layout where v2 has none).
func (s *cgroupSet) useV1(files []limitFile) bool {
	if len(s.v1) == 0 {
		return false
	}
	for _, f := range files {
		if s.v1[f.controller] == "" {
			return false
		}
	}
	return true
}

// ownCgroups returns lading's cgroups as readOwnCgroups found them the
// first time it was called, so that a build whose RUN steps set limits
// reads /proc/self/cgroup and /proc/self/mountinfo once. They are the
// cgroups lading started in: on v2 it may later move itself into a leaf
// below (see leaveHome), and step cgroups still go beside that leaf. The
// set is shared: callers must not change it.
func ownCgroups() (*cgroupSet, error) { return ownCgroupsOnce() }

var ownCgroupsOnce = sync.OnceValues(readOwnCgroups)

// readOwnCgroups finds lading's cgroups from /proc/self/cgroup and the
// cgroup mounts in /proc/self/mountinfo, as they are now.
func readOwnCgroups() (*cgroupSet, error) {
	procCg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return resolveCgroups(string(procCg), string(mi))
}

// resolveCgroups joins the paths of /proc/self/cgroup (procCg) with the
// cgroup mounts of the mountinfo text mi.
func resolveCgroups(procCg, mi string) (*cgroupSet, error) {
	mounts := parseCgroupMounts(mi)
	set := &cgroupSet{v1: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(procCg), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("bad /proc/self/cgroup line %q", line)
		}
		controllers, cgPath := parts[1], parts[2]
		if controllers == "" {
			if m := findMount(mounts, true, ""); m != nil {
				dir, err := m.dirOf(cgPath)
				if err != nil {
					return nil, err
				}
				set.v2 = dir
			}
			continue
		}
		for _, c := range strings.Split(controllers, ",") {
			if strings.HasPrefix(c, "name=") {
				continue
			}
			m := findMount(mounts, false, c)
			if m == nil {
				continue // not mounted here
			}
			dir, err := m.dirOf(cgPath)
			if err != nil {
				return nil, err
			}
			set.v1[c] = dir
		}
	}
	if len(set.v1) == 0 && set.v2 == "" {
		return nil, errors.New("no cgroup file system mounted")
	}
	return set, nil
}

// cgroupMount is a mounted cgroup hierarchy.
type cgroupMount struct {
	point       string   // where it is mounted
	root        string   // the cgroup at the mount point
	v2          bool     // cgroup2
	controllers []string // v1 controllers
}

// parseCgroupMounts returns the cgroup and cgroup2 mounts of the
// mountinfo text mi, in order.
func parseCgroupMounts(mi string) []cgroupMount {
	var mounts []cgroupMount
	for _, line := range strings.Split(mi, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		m := cgroupMount{point: mountinfo.Unescape(f[4]), root: mountinfo.Unescape(f[3]), v2: g[0] == "cgroup2"}
		if !m.v2 {
			for _, o := range strings.Split(g[2], ",") {
				if o != "rw" && o != "ro" && !strings.Contains(o, "=") && o != "xattr" && o != "clone_children" && o != "noprefix" && o != "cpuset_v2_mode" {
					m.controllers = append(m.controllers, o)
				}
			}
		}
		mounts = append(mounts, m)
	}
	return mounts
}

// findMount returns the first mount of the v2 hierarchy, or of the v1
// hierarchy with controller c. Later mounts of one hierarchy are often
// bind mounts of a subtree into a container; the first is the host's
// view that the paths in /proc/self/cgroup are relative to, unless a
// cgroup namespace makes the mount root "/" anyway.
func findMount(mounts []cgroupMount, v2 bool, c string) *cgroupMount {
	for i, m := range mounts {
		if m.v2 == v2 && (v2 || slices.Contains(m.controllers, c)) {
			return &mounts[i]
		}
	}
	return nil
}

// dirOf returns the directory of cgroup cgPath (as in /proc/self/cgroup)
// in this mount.
func (m *cgroupMount) dirOf(cgPath string) (string, error) {
	cgPath = path.Clean("/" + cgPath)
	rel, ok := strings.CutPrefix(cgPath, m.root)
	if m.root == "/" {
		rel, ok = cgPath, true
	}
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", fmt.Errorf("own cgroup %s lies outside the hierarchy mounted at %s (root %s)", cgPath, m.point, m.root)
	}
	return filepath.Join(m.point, rel), nil
}
