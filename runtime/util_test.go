package runtime

import (
	"os"

	"golang.org/x/sys/unix"
)

func unixOpenDirInheritable(dir string) (int, error) {
	return unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

func closeFD(fd int) { unix.Close(fd) }

func fcntlSeals(f *os.File) (int, error) {
	return unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
}
