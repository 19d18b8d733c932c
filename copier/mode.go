package copier

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// chmod computes the mode of a copied entry from its source mode (unix
// permission bits with setuid, setgid and sticky, 07777).
type chmod func(mode uint32, dir bool) uint32

// ParseChmod parses an octal --chmod value (up to 7777). Symbolic values
// need ParseMode.
func ParseChmod(s string) (uint32, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("invalid --chmod=%s: only octal modes up to 7777 are supported here", s)
	}
	return uint32(m), nil
}

// ParseMode parses a --chmod value, octal ("755") or symbolic as in
// chmod(1) ("u=rwX,go=rX", "+x", "g=u", "a-w,u+s"), and returns the
// function that computes the mode of a copied entry from its source mode
// (only the permission, setuid, setgid and sticky bits of old are read;
// its type bits are kept).
//
// The symbolic grammar is chmod(1)'s with a umask of 0, as GNU chmod
// applies it: clauses separated by commas, each [ugoa]* followed by one
// or more actions, an operator [+-=] followed by permissions [rwxXst]* or
// by a class [ugo] whose current bits are copied. No class means all. X
// is execute for directories and for files some class can already
// execute. On directories, setuid and setgid change only when "s" is
// written. An octal value sets the mode whatever the source mode.
func ParseMode(spec string) (func(old fs.FileMode, isDir bool) fs.FileMode, error) {
	c, err := parseMode(spec)
	if err != nil {
		return nil, err
	}
	return func(old fs.FileMode, isDir bool) fs.FileMode {
		m := uint32(old.Perm())
		if old&fs.ModeSetuid != 0 {
			m |= 0o4000
		}
		if old&fs.ModeSetgid != 0 {
			m |= 0o2000
		}
		if old&fs.ModeSticky != 0 {
			m |= 0o1000
		}
		kept := old &^ (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		return kept | FileMode(c(m, isDir))
	}, nil
}

// modeAction is one operator of a symbolic mode and what follows it.
type modeAction struct {
	op    byte   // '+', '-' or '='
	who   uint32 // bits the clause may change
	perms uint32 // bits named by r, w, x, s and t
	x     bool   // X was given
	s     bool   // s was given
	from  bool   // the action copies the bits of a class
	shift uint   // with from: where that class's bits are (6, 3 or 0)
}

var whoBits = map[byte]uint32{'u': 0o4700, 'g': 0o2070, 'o': 0o1007, 'a': 0o7777}

var permBits = map[byte]uint32{'r': 0o444, 'w': 0o222, 'x': 0o111, 's': 0o6000, 't': 0o1000}

var classShift = map[byte]uint{'u': 6, 'g': 3, 'o': 0}

// parseMode parses an octal or symbolic --chmod value.
func parseMode(spec string) (chmod, error) {
	if spec != "" && spec[0] >= '0' && spec[0] <= '9' {
		m, err := strconv.ParseUint(spec, 8, 32)
		if err != nil || m > 0o7777 {
			return nil, fmt.Errorf("invalid --chmod=%s: an octal mode must be at most 7777", spec)
		}
		return func(uint32, bool) uint32 { return uint32(m) }, nil
	}
	var acts []modeAction
	for _, clause := range strings.Split(spec, ",") {
		a, err := parseClause(clause)
		if err != nil {
			return nil, fmt.Errorf("invalid --chmod=%s: %s; want an octal mode or a symbolic one like u=rwX,go=rX", spec, err)
		}
		acts = append(acts, a...)
	}
	return func(m uint32, dir bool) uint32 {
		m &= 0o7777
		for _, a := range acts {
			m = a.apply(m, dir)
		}
		return m
	}, nil
}

// parseClause parses "[ugoa]*([+-=]([rwxXst]*|[ugo]))+".
func parseClause(c string) ([]modeAction, error) {
	var who uint32
	i := 0
	for ; i < len(c) && whoBits[c[i]] != 0; i++ {
		who |= whoBits[c[i]]
	}
	if who == 0 {
		who = 0o7777
	}
	if i == len(c) {
		return nil, fmt.Errorf("clause %q has no operator (+, - or =)", c)
	}
	var acts []modeAction
	for i < len(c) {
		a := modeAction{op: c[i], who: who}
		if a.op != '+' && a.op != '-' && a.op != '=' {
			return nil, fmt.Errorf("clause %q: unexpected %q where +, - or = belongs", c, c[i])
		}
		i++
		if i < len(c) && strings.IndexByte("ugo", c[i]) >= 0 {
			a.from, a.shift = true, classShift[c[i]]
			i++
		} else {
			for ; i < len(c) && strings.IndexByte("+-=", c[i]) < 0; i++ {
				switch b := c[i]; b {
				case 'X':
					a.x = true
				case 'r', 'w', 'x', 's', 't':
					a.perms |= permBits[b]
					a.s = a.s || b == 's'
				default:
					return nil, fmt.Errorf("clause %q: unexpected %q (permissions are r, w, x, X, s, t, or one of u, g, o alone)", c, b)
				}
			}
		}
		acts = append(acts, a)
	}
	return acts, nil
}

// apply applies the action to the mode m.
func (a modeAction) apply(m uint32, dir bool) uint32 {
	val := a.perms
	switch {
	case a.from:
		bits := m >> a.shift & 0o7
		val = bits<<6 | bits<<3 | bits
	case a.x && (dir || m&0o111 != 0):
		val |= 0o111
	}
	val &= a.who
	var omit uint32
	if dir && !a.s {
		omit = 0o6000 // directories keep setuid and setgid unless "s" is written
	}
	switch a.op {
	case '+':
		m |= val &^ omit
	case '-':
		m &^= val &^ omit
	case '=':
		m = m&(^a.who|omit) | val&^omit
	}
	return m
}
