// Package passwd resolves USER and --chown specifications ("name",
// "uid", "name:group", "uid:gid", ...) against the /etc/passwd and
// /etc/group files of an image. Lookup resolves the user a process runs
// as, the way Docker does: a name must exist, a number need not; the
// primary group defaults to the user's passwd entry (or 0), and
// supplementary groups are the groups listing the user. Owner resolves
// the owner of files a build step writes, the way BuildKit's file
// operations do.
package passwd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// User is a resolved user.
type User struct {
	UID    int
	GID    int
	Groups []int  // supplementary groups, without GID
	Home   string // "/" when unknown
	Name   string // "" when the user is not in passwd
}

// ErrNotFound is returned for a user or group name absent from the files.
var ErrNotFound = errors.New("not found")

type entry struct {
	name    string
	id, gid int
	home    string
	members []string
}

// parse reads colon-separated passwd (7 fields) or group (4 fields) lines.
func parse(r io.Reader, group bool) ([]entry, error) {
	if r == nil {
		return nil, nil
	}
	var out []entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if group {
			if len(f) < 3 {
				continue
			}
			id, err := strconv.Atoi(f[2])
			if err != nil {
				continue
			}
			e := entry{name: f[0], id: id}
			if len(f) > 3 && f[3] != "" {
				e.members = strings.Split(f[3], ",")
			}
			out = append(out, e)
			continue
		}
		if len(f) < 4 {
			continue
		}
		id, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		e := entry{name: f[0], id: id, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Lookup resolves spec ("user[:group]") against the contents of passwd and
// group (either may be nil when the image has no such file). An empty spec
// means root.
func Lookup(spec string, passwdFile, groupFile io.Reader) (User, error) {
	users, err := parse(passwdFile, false)
	if err != nil {
		return User{}, fmt.Errorf("reading passwd: %w", err)
	}
	groups, err := parse(groupFile, true)
	if err != nil {
		return User{}, fmt.Errorf("reading group: %w", err)
	}
	if spec == "" {
		spec = "0"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	u := User{Home: "/"}
	var found *entry
	if id, err := strconv.Atoi(userPart); err == nil && id >= 0 {
		u.UID = id
		for i := range users {
			if users[i].id == id {
				found = &users[i]
				break
			}
		}
	} else {
		for i := range users {
			if users[i].name == userPart {
				found = &users[i]
				break
			}
		}
		if found == nil {
			return User{}, fmt.Errorf("user %q: %w in /etc/passwd", userPart, ErrNotFound)
		}
		u.UID = found.id
	}
	if found != nil {
		u.GID = found.gid
		u.Name = found.name
		if found.home != "" {
			u.Home = found.home
		}
	}
	if hasGroup {
		if id, err := strconv.Atoi(groupPart); err == nil && id >= 0 {
			u.GID = id
		} else {
			ok := false
			for _, g := range groups {
				if g.name == groupPart {
					u.GID, ok = g.id, true
					break
				}
			}
			if !ok {
				return User{}, fmt.Errorf("group %q: %w in /etc/group", groupPart, ErrNotFound)
			}
		}
		// An explicit group replaces supplementary groups, as in Docker.
		return u, nil
	}
	if u.Name != "" {
		seen := map[int]bool{u.GID: true}
		for _, g := range groups {
			for _, m := range g.members {
				if m == u.Name && !seen[g.id] {
					seen[g.id] = true
					u.Groups = append(u.Groups, g.id)
				}
			}
		}
	}
	return u, nil
}

// Owner resolves the owner of files a build step writes (COPY/ADD
// --chown, the directories WORKDIR creates) from spec ("user[:group]"),
// the way BuildKit's file operations do, which differs from Lookup (the
// user a process runs as):
//   - "root" is 0 and a number is itself, without reading the files; a
//     number given alone is also the group (--chown=1000 is 1000:1000);
//   - a user name takes its uid and primary group from passwd;
//   - a group name takes its gid from group;
//   - a name missing from the files (or files missing) is id 0 for a
//     user, and leaves the user's group for a group.
func Owner(spec string, passwdFile, groupFile io.Reader) (uid, gid int, err error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if id, ok := numericID(userPart); ok {
		uid, gid = id, id
	} else {
		users, err := parse(passwdFile, false)
		if err != nil {
			return 0, 0, fmt.Errorf("reading passwd: %w", err)
		}
		for _, u := range users {
			if u.name == userPart {
				uid, gid = u.id, u.gid
				break
			}
		}
	}
	if !hasGroup {
		return uid, gid, nil
	}
	if id, ok := numericID(groupPart); ok {
		return uid, id, nil
	}
	groups, err := parse(groupFile, true)
	if err != nil {
		return 0, 0, fmt.Errorf("reading group: %w", err)
	}
	for _, g := range groups {
		if g.name == groupPart {
			return uid, g.id, nil
		}
	}
	return uid, gid, nil
}

// numericID parses a user or group given as a number; "root" is 0.
func numericID(s string) (int, bool) {
	if s == "root" {
		return 0, true
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, false
	}
	return int(n), true
}
