package runtime

import "github.com/lading-build/lading/runtime/initproc"

// Init turns this process into the container init when Run started it
// from this binary (when lading was built without the embedded init, see
// runtime/initbin), and never returns then: it sets up the container and
// executes the command, or reports why not to Run and exits. Otherwise it
// returns at once. Every main, and every TestMain of a package that calls
// Run, must call Init first.
func Init() { initproc.Init() }
