package initproc

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// LoopbackUp brings up "lo" in this thread's network namespace.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	return nil
}

// enterNetwork puts this thread, the one that will execute the command,
// into the container's network namespace: the shared private one of
// NetworkDefault, joined before /sys is mounted so that /sys/class/net
// shows its interfaces, or a new one of NetworkNone, which has only
// loopback, to bring up.
func enterNetwork(network string) error {
	switch network {
	case NetworkDefault:
		err := unix.Setns(NetFD, unix.CLONE_NEWNET)
		unix.Close(NetFD)
		if err != nil {
			return fmt.Errorf("joining the network namespace: %w", err)
		}
	case NetworkNone:
		if err := LoopbackUp(); err != nil {
			return err
		}
		AllowPing()
	}
	return nil
}

// AllowPing lets every group open ICMP echo sockets (SOCK_DGRAM,
// IPPROTO_ICMP) in this thread's network namespace, a private one lading
// made: ping works there without CAP_NET_RAW. It is best effort: where
// /proc/sys is read-only (lading in a container), ping just fails.
func AllowPing() {
	os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647"), 0)
}
