package runtime

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// initSeals are applied to the in-memory copy of the binary: nothing can
// change its size or contents afterwards, and the seals themselves are final.
const initSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// minExeFD keeps the sealed copy away from the low descriptors that
// os/exec rearranges in the child before it calls execve.
const minExeFD = 100

var sealed struct {
	once sync.Once
	file *os.File
	err  error
}

// sealedExe returns a sealed memfd holding a copy of /proc/self/exe, made
// once per process. The container init is executed from it, so a container
// that reaches the init's /proc/<pid>/exe can never write to the binary on
// the host (CVE-2019-5736).
func sealedExe() (*os.File, error) {
	sealed.once.Do(func() {
		sealed.file, sealed.err = copyExe()
	})
	return sealed.file, sealed.err
}

// Prepare makes ahead of the first Run what every Run of the process
// shares (the sealed copy of the binary), so that the first does not wait
// for it. Run reports an error it meets.
func Prepare() { _, _ = sealedExe() }

func copyExe() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("opening own binary: %w", err)
	}
	defer src.Close()
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
		return nil, fmt.Errorf("copying own binary: %w", err)
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
