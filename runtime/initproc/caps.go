package initproc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// DefaultCaps is Docker's default capability set, as a bit mask
// (0xa80425fb).
const DefaultCaps uint64 = 1<<unix.CAP_CHOWN |
	1<<unix.CAP_DAC_OVERRIDE |
	1<<unix.CAP_FSETID |
	1<<unix.CAP_FOWNER |
	1<<unix.CAP_MKNOD |
	1<<unix.CAP_NET_RAW |
	1<<unix.CAP_SETGID |
	1<<unix.CAP_SETUID |
	1<<unix.CAP_SETFCAP |
	1<<unix.CAP_SETPCAP |
	1<<unix.CAP_NET_BIND_SERVICE |
	1<<unix.CAP_SYS_CHROOT |
	1<<unix.CAP_KILL |
	1<<unix.CAP_AUDIT_WRITE

// limitBounding removes every capability outside caps from the bounding
// set and clears the ambient set. It needs CAP_SETPCAP.
func limitBounding(caps uint64) error {
	for c := 0; c < 64; c++ {
		if caps&(1<<uint(c)) != 0 {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break // past the last capability this kernel knows
		}
		if err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	return nil
}

// setCaps sets this thread's effective and permitted sets to caps and
// empties the inheritable set, as Docker does since CVE-2022-24769: a
// non-root user then gets capabilities only from file capabilities.
func setCaps(caps uint64) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := range data {
		word := uint32(caps >> (32 * i))
		data[i].Effective = word
		data[i].Permitted = word
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("setting capabilities: %w", err)
	}
	return nil
}

// ContainerCaps is the capability set of a container: Docker's default
// set without CAP_NET_RAW, in every network mode. In the host's namespace
// raw and packet sockets would see and forge the host's traffic; the
// private namespace of NetworkDefault is shared by the build's concurrent
// steps, which could sniff each other. ping uses ICMP sockets instead
// (see AllowPing).
const ContainerCaps = DefaultCaps &^ (1 << unix.CAP_NET_RAW)
