package runtime

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/lading-build/lading/runtime/initbin"
)

// initSeals are applied to the in-memory copy of the binary: nothing can
// change its size or contents afterwards, and the seals themselves are final.
const initSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// minExeFD keeps the sealed copy away from the low descriptors that
// os/exec rearranges in the child before it calls execve.
const minExeFD = 100

// sealedInit and sealedSelf are the sealed copies of the embedded init
// program and of /proc/self/exe, each made once per process.
var (
	sealedInit = sync.OnceValues(func() (*os.File, error) {
		b := initbin.Binary()
		if b == nil {
			return sealedSelf()
		}
		return sealCopy(bytes.NewReader(b), "embedded init")
	})
	sealedSelf = sync.OnceValues(func() (*os.File, error) {
		src, err := os.Open("/proc/self/exe")
		if err != nil {
			return nil, fmt.Errorf("opening own binary: %w", err)
		}
		defer src.Close()
		return sealCopy(src, "own binary")
	})
)

// forceSelfExec makes Run start lading itself as the init even when the
// init program is embedded (for tests of that fallback).
var forceSelfExec atomic.Bool

// initStarted, when set (by a test, while no other Run runs), is called
// with the pid of each init Run starts, before the init gets its config.
var initStarted func(pid int)

// sealedExe returns a sealed memfd holding the container init: a copy of
// the init program lading embeds (runtime/initbin) when the build
// embedded it, else of /proc/self/exe, whose Init becomes the init. The
// container init is executed from it, so a container that reaches the
// init's /proc/<pid>/exe can never write to a binary on the host
// (CVE-2019-5736).
func sealedExe() (*os.File, error) {
	if forceSelfExec.Load() {
		return sealedSelf()
	}
	return sealedInit()
}

// Prepare makes ahead of the first Run what every Run of the process
// shares (the sealed copy of the init, and the compiled seccomp filter of
// profile, a Spec.Seccomp value), so that the first does not wait for it.
// Run reports an error it meets.
func Prepare(profile string) {
	_, _ = sealedExe()
	_, _ = seccompFilter(profile)
}

// sealCopy copies src into a new memfd and seals it; what names src in
// errors.
func sealCopy(src io.Reader, what string) (*os.File, error) {
	fd, err := unix.MemfdCreate("lading-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("creating memfd: %w", err)
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, minExeFD)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("moving memfd: %w", err)
	}
	mem := os.NewFile(uintptr(high), "lading-init")
	if _, err := io.Copy(mem, src); err != nil {
		mem.Close()
		return nil, fmt.Errorf("copying %s: %w", what, err)
	}
	if _, err := unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, initSeals); err != nil {
		mem.Close()
		return nil, fmt.Errorf("sealing memfd: %w", err)
	}
	return mem, nil
}

// exePath is the name execve uses for the sealed copy.
func exePath(f *os.File) string {
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd())
}
