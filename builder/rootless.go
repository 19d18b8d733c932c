package builder

import "github.com/lading-build/lading/runtime"

// UserNamespaceMaps are the uid and gid maps of the user namespace of a
// rootless lading (see RootlessMaps).
type UserNamespaceMaps = runtime.UserNamespaceMaps

// RootlessMaps returns the maps for the calling user: root inside is the
// caller, ids 1 and up its /etc/subuid and /etc/subgid ranges, or only
// its own ids when it has none (Single).
func RootlessMaps() (UserNamespaceMaps, error) { return runtime.RootlessMaps() }

// UserNamespaceError explains why a user namespace could not be made,
// naming what forbids it and the fix.
func UserNamespaceError(err error) error { return runtime.UserNamespaceError(err) }
