package runtime

import (
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// loopbackUp brings up "lo" in this network namespace.
func loopbackUp() error {
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

// isLoopback reports whether addr (a nameserver entry) is a loopback
// address.
func isLoopback(addr string) bool {
	a, err := netip.ParseAddr(addr)
	return err == nil && a.Unmap().IsLoopback()
}

// netFD is the descriptor of the namespace an init with NetworkDefault
// joins (Run passes it after the config and error pipes).
const netFD = 5

// enterNetwork puts this thread, the one that will execute the command,
// into the container's network namespace: the shared private one of
// NetworkDefault, joined before /sys is mounted so that /sys/class/net
// shows its interfaces, or a new one of NetworkNone, which has only
// loopback, to bring up.
func enterNetwork(network string) error {
	switch network {
	case NetworkDefault:
		err := unix.Setns(netFD, unix.CLONE_NEWNET)
		unix.Close(netFD)
		if err != nil {
			return fmt.Errorf("joining the network namespace: %w", err)
		}
	case NetworkNone:
		if err := loopbackUp(); err != nil {
			return err
		}
		allowPing()
	}
	return nil
}

// allowPing lets every group open ICMP echo sockets (SOCK_DGRAM,
// IPPROTO_ICMP) in this thread's network namespace, a private one lading
// made: ping works there without CAP_NET_RAW. It is best effort: where
// /proc/sys is read-only (lading in a container), ping just fails.
func allowPing() {
	os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647"), 0)
}

// containerCaps is the capability set of a container: Docker's default
// set without CAP_NET_RAW, in every network mode. In the host's namespace
// raw and packet sockets would see and forge the host's traffic; the
// private namespace of NetworkDefault is shared by the build's concurrent
// steps, which could sniff each other. ping uses ICMP sockets instead
// (see allowPing).
func containerCaps() uint64 {
	return DefaultCaps &^ (1 << unix.CAP_NET_RAW)
}
