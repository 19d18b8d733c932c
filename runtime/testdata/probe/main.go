// Command probe tries things a container should not be able to do and
// reports what happened. The runtime's tests build it statically and run
// it inside containers.
//
//	probe tiocsti TEXT   push TEXT into the terminal via /dev/tty and fds 0-2
//	probe keyctl         create a key in the session keyring
//	probe clone3         call clone3 with no flags
//	probe ping           ping 127.0.0.1 with an ICMP socket, as iputils does
//	probe packet         open a packet socket (sees every frame)
//	probe raw            open a raw TCP socket (sees every TCP packet)
//
// Every command but tiocsti exits 0 when the call succeeded and 1 with
// the error otherwise.
package main

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: probe tiocsti|keyctl|clone3|ping|packet|raw"))
	}
	switch os.Args[1] {
	case "tiocsti":
		tiocsti(os.Args[2])
	case "keyctl":
		_, err := unix.AddKey("user", "probe", []byte("secret"), unix.KEY_SPEC_PROCESS_KEYRING)
		report(err)
	case "clone3":
		// Only the syscall's verdict matters: a zero-size argument
		// is EINVAL once the filter lets it through.
		_, _, errno := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		report(errno)
	case "ping":
		report(ping())
	case "packet":
		_, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0x0300) // ETH_P_ALL, big-endian
		report(err)
	case "raw":
		_, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
		report(err)
	default:
		fail(fmt.Errorf("unknown probe %q", os.Args[1]))
	}
}

// tiocsti tries every path to a terminal and prints the result of each.
func tiocsti(text string) {
	targets := map[string]int{"fd0": 0, "fd1": 1, "fd2": 2}
	if fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY, 0); err != nil {
		fmt.Printf("/dev/tty: open: %v\n", err)
	} else {
		targets["/dev/tty"] = fd
	}
	for _, name := range []string{"/dev/tty", "fd0", "fd1", "fd2"} {
		fd, ok := targets[name]
		if !ok {
			continue
		}
		var err error
		for i := 0; i < len(text) && err == nil; i++ {
			_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCSTI, uintptr(unsafe.Pointer(&[]byte(text)[i])))
			if errno != 0 {
				err = errno
			}
		}
		fmt.Printf("%s: TIOCSTI: %v\n", name, err)
	}
}

// ping sends an ICMP echo request to 127.0.0.1 from an ICMP socket (the
// kernel fills in the identifier and checksum) and waits up to 5 s for
// the reply.
func ping() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		return err
	}
	echo := []byte{8, 0, 0, 0, 0, 0, 0, 1, 'p', 'r', 'o', 'b', 'e'}
	if err := unix.Sendto(fd, echo, 0, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("sendto: %w", err)
	}
	buf := make([]byte, 128)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("recvfrom: %w", err)
	}
	if n < 8 || buf[0] != 0 {
		return fmt.Errorf("not an echo reply: % x", buf[:n])
	}
	return nil
}

func report(err error) {
	if err != nil && err != unix.Errno(0) {
		fail(err)
	}
	fmt.Println("ok")
}

func fail(err error) {
	fmt.Println(err)
	os.Exit(1)
}
