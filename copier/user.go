package copier

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/passwd"
)

// maxUserFile bounds what is read of /etc/passwd and /etc/group.
const maxUserFile = 16 << 20

// LookupOwner resolves the owner of written files from spec ("user",
// "uid:gid", "name:group", ...) with passwd.Owner against
// root/etc/passwd and root/etc/group, both opened inside root (a
// symlinked /etc is followed as the image would see it). Missing files
// are treated as empty.
func LookupOwner(root, spec string) (uid, gid int, err error) {
	pw, err := readInRoot(root, "/etc/passwd")
	if err != nil {
		return 0, 0, err
	}
	gr, err := readInRoot(root, "/etc/group")
	if err != nil {
		return 0, 0, err
	}
	var pr, grr io.Reader // untyped nil when a file is missing
	if pw != nil {
		pr = bytes.NewReader(pw)
	}
	if gr != nil {
		grr = bytes.NewReader(gr)
	}
	return passwd.Owner(spec, pr, grr)
}

// readInRoot reads the regular file p resolved inside root; nil when it
// does not exist.
func readInRoot(root, p string) ([]byte, error) {
	h, err := pathrs.OpenInRoot(root, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", p, err)
	}
	defer h.Close()
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", p, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading %s: not a regular file", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxUserFile))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}
