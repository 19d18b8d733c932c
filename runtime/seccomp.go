package runtime

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"

	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SeccompUnconfined as Spec.Seccomp runs the command without a syscall
// filter.
const SeccompUnconfined = "unconfined"

// Return values of a seccomp filter (SECCOMP_RET_*).
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
	retData        = 0x0000ffff
)

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// maxFilterLen is the kernel's limit on a filter's instructions.
const maxFilterLen = 4096

// seccompArches are the syscall tables this runtime can filter, by the
// profile's architecture names. x32 shares x86_64's audit architecture
// and is folded into its table with x32Bit set.
var seccompArches = map[specs.Arch]*arch.Info{
	specs.ArchX86_64:  arch.X86_64,
	specs.ArchX86:     arch.I386,
	specs.ArchX32:     arch.X32,
	specs.ArchAARCH64: arch.AARCH64,
	specs.ArchARM:     arch.ARM,
}

// nativeArch is the profile name of the architecture lading runs on.
func nativeArch() (specs.Arch, error) {
	switch goruntime.GOARCH {
	case "amd64":
		return specs.ArchX86_64, nil
	case "arm64":
		return specs.ArchAARCH64, nil
	case "386":
		return specs.ArchX86, nil
	case "arm":
		return specs.ArchARM, nil
	}
	return "", fmt.Errorf("no seccomp syscall table for %s (--security-opt seccomp=unconfined runs steps without a filter)", goruntime.GOARCH)
}

// seccompFilters caches compiled filters by profile text.
var seccompFilters sync.Map // string -> seccompResult

type seccompResult struct {
	filter []unix.SockFilter
	err    error
}

// CheckSeccomp reports whether profile (a Spec.Seccomp value) can be
// used: "", SeccompUnconfined, or a profile in Docker's JSON format that
// compiles for this machine.
func CheckSeccomp(profile string) error {
	_, err := seccompFilter(profile)
	return err
}

// seccompFilter returns the BPF program for a Spec.Seccomp value, or nil
// for SeccompUnconfined.
func seccompFilter(profile string) ([]unix.SockFilter, error) {
	if profile == SeccompUnconfined {
		return nil, nil
	}
	if r, ok := seccompFilters.Load(profile); ok {
		return r.(seccompResult).filter, r.(seccompResult).err
	}
	f, err := compileProfile(profile)
	if err != nil {
		err = fmt.Errorf("seccomp profile: %w", err)
	}
	seccompFilters.Store(profile, seccompResult{f, err})
	return f, err
}

// compileProfile resolves a profile (Docker's default for "") against the
// container's capabilities, architecture and kernel, as Docker does, and
// compiles it.
func compileProfile(profile string) ([]unix.SockFilter, error) {
	// The profile's conditions look at the bounding set.
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: capNamesOf(DefaultCaps),
	}}}
	var (
		p   *specs.LinuxSeccomp
		err error
	)
	if profile == "" {
		p, err = mobyseccomp.GetDefaultProfile(rs)
	} else {
		p, err = mobyseccomp.LoadProfile(profile, rs)
	}
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, errors.New("profile has no defaultAction and no syscalls; use seccomp=unconfined to run without a filter")
	}
	return compileSeccomp(p)
}
