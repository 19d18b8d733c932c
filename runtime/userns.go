package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// IDRange is a range of ids given to a user in /etc/subuid or
// /etc/subgid: Count ids starting at Start.
type IDRange struct {
	Start, Count int
}

// SubIDRanges reads the ranges that file (/etc/subuid or /etc/subgid)
// gives to the user with the given name or numeric id, in file order. A
// missing file means no ranges.
func SubIDRanges(file, name string, id int) ([]IDRange, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []IDRange
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) != 3 || (parts[0] != name && parts[0] != strconv.Itoa(id)) {
			continue
		}
		start, err1 := strconv.Atoi(parts[1])
		count, err2 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil || start < 0 || count <= 0 {
			return nil, fmt.Errorf("%s: bad line %q", file, line)
		}
		out = append(out, IDRange{start, count})
	}
	return out, sc.Err()
}

// IDMap is one user namespace's uid or gid map: id 0 is the caller's own
// id, ids 1 and up are its subordinate ranges, one after the other.
type IDMap struct {
	Own    int
	Ranges []IDRange
}

// lines is the map in uid_map's format: inside, outside, count.
func (m IDMap) lines() []string {
	out := []string{"0", strconv.Itoa(m.Own), "1"}
	next := 1
	for _, r := range m.Ranges {
		out = append(out, strconv.Itoa(next), strconv.Itoa(r.Start), strconv.Itoa(r.Count))
		next += r.Count
	}
	return out
}

// UserNamespaceMaps are the uid and gid maps lading gives the user
// namespace of a rootless build: the caller is root inside, its
// /etc/subuid and /etc/subgid ranges are ids 1 and up. Single is true
// when either file gives the caller no range: then only the caller's own
// ids are mapped, and files owned by anyone else cannot be created.
type UserNamespaceMaps struct {
	UID, GID IDMap
	Single   bool
}

// RootlessMaps returns the maps for the calling user.
func RootlessMaps() (UserNamespaceMaps, error) {
	uid, gid := os.Getuid(), os.Getgid()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	m := UserNamespaceMaps{UID: IDMap{Own: uid}, GID: IDMap{Own: gid}}
	var err error
	if m.UID.Ranges, err = SubIDRanges("/etc/subuid", name, uid); err != nil {
		return m, err
	}
	if m.GID.Ranges, err = SubIDRanges("/etc/subgid", name, uid); err != nil {
		return m, err
	}
	if len(m.UID.Ranges) == 0 || len(m.GID.Ranges) == 0 {
		m.UID.Ranges, m.GID.Ranges, m.Single = nil, nil, true
	}
	return m, nil
}

// Apply writes the maps of the user namespace of process pid, which must
// not have maps yet: through newuidmap and newgidmap (Debian's uidmap
// package) for subordinate ranges, directly for a single-id map.
func (m UserNamespaceMaps) Apply(pid int) error {
	p := strconv.Itoa(pid)
	if m.Single {
		// An unprivileged process may map its own ids, once it gave up
		// setgroups in that namespace.
		if err := os.WriteFile("/proc/"+p+"/uid_map", []byte("0 "+strconv.Itoa(m.UID.Own)+" 1\n"), 0); err != nil {
			return fmt.Errorf("writing uid map: %w", err)
		}
		if err := os.WriteFile("/proc/"+p+"/setgroups", []byte("deny\n"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("disabling setgroups: %w", err)
		}
		if err := os.WriteFile("/proc/"+p+"/gid_map", []byte("0 "+strconv.Itoa(m.GID.Own)+" 1\n"), 0); err != nil {
			return fmt.Errorf("writing gid map: %w", err)
		}
		return nil
	}
	for _, t := range []struct {
		tool string
		m    IDMap
	}{{"newuidmap", m.UID}, {"newgidmap", m.GID}} {
		bin, err := exec.LookPath(t.tool)
		if err != nil {
			return fmt.Errorf("%s is not installed (Debian package uidmap): %w", t.tool, err)
		}
		out, err := exec.Command(bin, append([]string{p}, t.m.lines()...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", t.tool, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// UserNamespaceError explains why a user namespace could not be created
// (err is the error of the clone), naming the setting that forbids it and
// how to allow it.
func UserNamespaceError(err error) error {
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	var why string
	switch {
	case read("/proc/sys/user/max_user_namespaces") == "0":
		why = "user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0; set it with sysctl user.max_user_namespaces=15000)"
	case read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
		why = "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=1 allows them)"
	case read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
		why = "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for lading allowing userns)"
	case errors.Is(err, unix.EPERM):
		why = "the kernel or a seccomp filter refused to create one (in a container: run it with --security-opt seccomp=unconfined --security-opt systempaths=unconfined, and apparmor=unconfined where AppArmor runs; see docs/where-it-runs.md)"
	case errors.Is(err, unix.ENOSPC):
		why = "the limit of user namespaces is reached (/proc/sys/user/max_user_namespaces)"
	case errors.Is(err, unix.EINVAL):
		why = "the kernel does not support user namespaces (CONFIG_USER_NS)"
	default:
		why = "the kernel refused it"
	}
	return fmt.Errorf("rootless mode needs a user namespace, but %s: %w", why, err)
}
