// Command lading-init is the init of lading's containers: lading embeds
// it (make build, see runtime/initbin) and executes it from a sealed
// in-memory copy for every RUN step. It is a program of its own so that
// starting it does not run the package initialisation of all of lading.
// Started any other way, it says so and exits with status 2.
package main

import (
	"os"

	"github.com/lading-build/lading/runtime/initproc"
)

func main() {
	initproc.Init()
	os.Stderr.WriteString("lading-init: the container init of lading, started only by lading itself\n")
	os.Exit(2)
}
