//go:build !linux

package progress

// isTerminal reports whether fd is a terminal; lading runs builds on
// Linux only, so elsewhere the answer is no.
func isTerminal(fd int) bool { return false }

// termSize returns zeros: the size is unknown.
func termSize(fd int) (width, height int) { return 0, 0 }
