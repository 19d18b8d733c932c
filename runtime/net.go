package runtime

import "net/netip"

// isLoopback reports whether addr (a nameserver entry) is a loopback
// address.
func isLoopback(addr string) bool {
	a, err := netip.ParseAddr(addr)
	return err == nil && a.Unmap().IsLoopback()
}
