package initproc

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PackFilter encodes a filter as struct sock_filter array bytes, the
// compact form the config carries to the init.
func PackFilter(f []unix.SockFilter) []byte {
	b := make([]byte, 0, 8*len(f))
	for _, i := range f {
		b = binary.NativeEndian.AppendUint16(b, i.Code)
		b = append(b, i.Jt, i.Jf)
		b = binary.NativeEndian.AppendUint32(b, i.K)
	}
	return b
}

// loadSeccomp installs a packed filter on this thread, which then
// executes the command. It runs in the init while it still has
// CAP_SYS_ADMIN, so that, as in Docker, no_new_privs stays off and setuid
// binaries keep working; only without that capability (an init in a user
// namespace it does not own) does the kernel demand no_new_privs, and
// then it is set. The profile must allow what the init does afterwards
// (setgroups, setresuid, capset, prctl, execve), as with runc.
func loadSeccomp(packed []byte) error {
	if len(packed) == 0 {
		return nil
	}
	f := make([]unix.SockFilter, len(packed)/8)
	for i := range f {
		b := packed[8*i:]
		f[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
	}
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	load := func() unix.Errno {
		_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
		return errno
	}
	errno := load()
	if errno == unix.EACCES {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs for seccomp: %w", err)
		}
		errno = load()
	}
	if errno != 0 {
		return fmt.Errorf("installing seccomp filter: %w", errno)
	}
	return nil
}
