// Package initbin holds the container init program, cmd/lading-init, when
// the build embedded it: make builds it into bin/lading-init first and
// sets Digest to its SHA-256 with -ldflags -X. A build without it (plain
// go build, go test, go vet) embeds only bin/README, and the runtime then
// re-executes lading itself as the init.
package initbin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
)

//go:embed bin
var files embed.FS

// name is the init program's path in files.
const name = "bin/lading-init"

// Digest is the hex SHA-256 of the init program the build embedded, set
// by -ldflags "-X github.com/lading-build/lading/runtime/initbin.Digest=...".
var Digest string

// Binary returns the embedded init program, or nil when Digest is not
// set or does not match it (an init built for another version of lading
// left in bin/), so that a stale one never runs.
func Binary() []byte {
	if Digest == "" {
		return nil
	}
	b, err := files.ReadFile(name)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != Digest {
		return nil
	}
	return b
}
