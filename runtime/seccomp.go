package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
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
	return "", fmt.Errorf("no seccomp syscall table for %s", goruntime.GOARCH)
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

// compileSeccomp turns a resolved profile into a classic BPF program with
// libseccomp's semantics: the rules of a syscall are tried in profile
// order and the first whose argument conditions all hold decides; a
// syscall no rule matches gets the default action; an architecture the
// profile does not list is killed. Syscall names a table does not know
// are skipped, as runc does. When the default action denies, syscalls
// numbered above the table's highest get ENOSYS, so that a libc falls back
// from calls newer than the table instead of failing.
func compileSeccomp(p *specs.LinuxSeccomp) ([]unix.SockFilter, error) {
	if p.ListenerPath != "" {
		return nil, errors.New("seccomp notification (listenerPath) is not supported")
	}
	def, err := seccompRet(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("defaultAction: %w", err)
	}
	native, err := nativeArch()
	if err != nil {
		return nil, err
	}
	tables := map[arch.AuditArch][]*arch.Info{}
	var order []arch.AuditArch
	for _, a := range append([]specs.Arch{native}, p.Architectures...) {
		info, ok := seccompArches[a]
		if !ok {
			continue // a foreign architecture cannot run here
		}
		if contains(tables[info.ID], info) {
			continue
		}
		if tables[info.ID] == nil {
			order = append(order, info.ID)
		}
		tables[info.ID] = append(tables[info.ID], info)
	}
	var blocks [][]bpf.Instruction
	for _, id := range order {
		b, err := archBlock(p, tables[id], def)
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
	}
	// Dispatch on the architecture: two instructions per entry, then
	// the verdict for any other architecture.
	head := []bpf.Instruction{bpf.LoadAbsolute{Off: offArch, Size: 4}}
	start := 1 + 2*len(order) + 1
	for i, id := range order {
		at := len(head) + 1 // index of the jump
		head = append(head,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipTrue: 0, SkipFalse: 1},
			bpf.Jump{Skip: uint32(start - at - 1)})
		start += len(blocks[i])
	}
	head = append(head, bpf.RetConstant{Val: retKillProcess})
	prog := head
	for _, b := range blocks {
		prog = append(prog, b...)
	}
	if len(prog) > maxFilterLen {
		return nil, fmt.Errorf("filter of %d instructions exceeds the kernel's %d", len(prog), maxFilterLen)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assembling filter: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

func contains(infos []*arch.Info, info *arch.Info) bool {
	for _, i := range infos {
		if i == info {
			return true
		}
	}
	return false
}

// seccompRet is the filter's return value for a profile action.
func seccompRet(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := func(def uint) (uint32, error) {
		v := def
		if errnoRet != nil {
			v = *errnoRet
		}
		if v > retData {
			return 0, fmt.Errorf("errnoRet %d out of range", v)
		}
		return uint32(v), nil
	}
	switch a {
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActErrno:
		d, err := data(uint(unix.EPERM))
		return retErrno | d, err
	case specs.ActTrace:
		d, err := data(uint(unix.ENOSYS))
		return retTrace | d, err
	case "":
		return 0, errors.New("no action")
	}
	return 0, fmt.Errorf("unsupported action %q", a)
}

// seccompRule is one profile rule for one syscall.
type seccompRule struct {
	ret  uint32
	args []specs.LinuxSeccompArg // all must hold
}

// archBlock is the filter part for one audit architecture: it loads the
// syscall number and always returns.
func archBlock(p *specs.LinuxSeccomp, infos []*arch.Info, def uint32) ([]bpf.Instruction, error) {
	wide := infos[0] != arch.I386 && infos[0] != arch.ARM
	rules := map[uint32][]seccompRule{}
	var nrs []uint32
	maxNr := uint32(0)
	for _, info := range infos {
		if info.SeccompMask != 0 {
			continue // x32 numbers are all above the native ones
		}
		for n := range info.SyscallNumbers {
			maxNr = max(maxNr, uint32(n))
		}
	}
	for i, sc := range p.Syscalls {
		ret, err := seccompRet(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("syscalls[%d]: %w", i, err)
		}
		alts, err := argAlternatives(sc.Args)
		if err != nil {
			return nil, fmt.Errorf("syscalls[%d]: %w", i, err)
		}
		for _, name := range sc.Names {
			for _, info := range infos {
				n, ok := info.SyscallNames[name]
				if !ok {
					continue
				}
				nr := uint32(n | info.SeccompMask)
				if _, seen := rules[nr]; !seen {
					nrs = append(nrs, nr)
				}
				for _, args := range alts {
					rules[nr] = append(rules[nr], seccompRule{ret, args})
				}
			}
		}
	}
	out := []bpf.Instruction{bpf.LoadAbsolute{Off: offNr, Size: 4}}
	// Syscalls with one unconditional rule: runs of equality tests that
	// jump to one shared return per verdict.
	byRet := map[uint32][]uint32{}
	var rets []uint32
	var complex []uint32
	for _, nr := range nrs {
		r := rules[nr]
		if len(r[0].args) > 0 {
			complex = append(complex, nr)
			continue
		}
		if byRet[r[0].ret] == nil {
			rets = append(rets, r[0].ret)
		}
		byRet[r[0].ret] = append(byRet[r[0].ret], nr)
	}
	for _, ret := range rets {
		out = append(out, equalityRuns(byRet[ret], ret)...)
	}
	for _, nr := range complex {
		body, err := ruleBody(rules[nr], def, wide)
		if err != nil {
			return nil, err
		}
		if len(body) <= 255 {
			out = append(out, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: uint8(len(body))})
		} else {
			out = append(out,
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipTrue: 1},
				bpf.Jump{Skip: uint32(len(body))})
		}
		out = append(out, body...)
	}
	if def&0xffff0000 != retAllow && def&0xffff0000 != retLog {
		out = append(out,
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: maxNr, SkipFalse: 1},
			bpf.RetConstant{Val: retErrno | uint32(unix.ENOSYS)})
	}
	return append(out, bpf.RetConstant{Val: def}), nil
}

// equalityRuns returns ret for every syscall number in nrs and falls
// through for any other.
func equalityRuns(nrs []uint32, ret uint32) []bpf.Instruction {
	const run = 200 // keeps every jump within a conditional jump's 255
	var out []bpf.Instruction
	for len(nrs) > 0 {
		n := min(run, len(nrs))
		for i, nr := range nrs[:n] {
			out = append(out, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipTrue: uint8(n - i)})
		}
		out = append(out, bpf.Jump{Skip: 1}, bpf.RetConstant{Val: ret})
		nrs = nrs[n:]
	}
	return out
}

// argAlternatives returns the argument conditions of a rule as a list of
// alternatives: all conditions together, or, when one argument is
// compared more than once, each condition alone (runc's reading, which
// Docker's profiles are written for).
func argAlternatives(args []specs.LinuxSeccompArg) ([][]specs.LinuxSeccompArg, error) {
	seen := map[uint]bool{}
	repeated := false
	for _, a := range args {
		if a.Index > 5 {
			return nil, fmt.Errorf("argument index %d out of range", a.Index)
		}
		repeated = repeated || seen[a.Index]
		seen[a.Index] = true
	}
	if !repeated {
		return [][]specs.LinuxSeccompArg{args}, nil
	}
	alts := make([][]specs.LinuxSeccompArg, len(args))
	for i, a := range args {
		alts[i] = []specs.LinuxSeccompArg{a}
	}
	return alts, nil
}

// ruleBody tests a syscall's rules in order, with the syscall number
// already matched, and always returns: the first rule whose conditions
// hold gives its verdict, def if none does.
func ruleBody(rules []seccompRule, def uint32, wide bool) ([]bpf.Instruction, error) {
	var out []bpf.Instruction
	for _, r := range rules {
		var c condCode
		for _, a := range r.args {
			if err := c.arg(a, wide); err != nil {
				return nil, err
			}
		}
		code, err := c.finish(r.ret)
		if err != nil {
			return nil, err
		}
		out = append(out, code...)
	}
	return append(out, bpf.RetConstant{Val: def}), nil
}

// condCode builds the tests of one rule: each test falls through when it
// holds and jumps past the rule's return ("fail") when it does not.
type condCode struct {
	ins   []bpf.Instruction
	fails []failJump
}

type failJump struct {
	at     int
	onTrue bool
}

// fail is a placeholder skip, patched by finish.
const fail = -1

func (c *condCode) load(off uint32) {
	c.ins = append(c.ins, bpf.LoadAbsolute{Off: off, Size: 4})
}

func (c *condCode) and(v uint32) {
	c.ins = append(c.ins, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: v})
}

// jump adds a conditional jump; t and f are skips, or fail.
func (c *condCode) jump(cond bpf.JumpTest, v uint32, t, f int) {
	j := bpf.JumpIf{Cond: cond, Val: v}
	if t == fail {
		c.fails = append(c.fails, failJump{len(c.ins), true})
	} else {
		j.SkipTrue = uint8(t)
	}
	if f == fail {
		c.fails = append(c.fails, failJump{len(c.ins), false})
	} else {
		j.SkipFalse = uint8(f)
	}
	c.ins = append(c.ins, j)
}

// arg adds the test of one argument condition. The kernel passes 64-bit
// arguments; on 32-bit architectures only the low half is compared, as
// libseccomp does.
func (c *condCode) arg(a specs.LinuxSeccompArg, wide bool) error {
	lo := offArgs + 8*uint32(a.Index) // little-endian: low word first
	hi := lo + 4
	vlo, vhi := uint32(a.Value), uint32(a.Value>>32)
	if !wide {
		vhi = 0
	}
	// The high words decide unless they are equal; then the low
	// words do. pass skips the rest of the test.
	switch a.Op {
	case specs.OpEqualTo:
		if wide {
			c.load(hi)
			c.jump(bpf.JumpEqual, vhi, 0, fail)
		}
		c.load(lo)
		c.jump(bpf.JumpEqual, vlo, 0, fail)
	case specs.OpNotEqual:
		if wide {
			c.load(hi)
			c.jump(bpf.JumpEqual, vhi, 0, 2)
		}
		c.load(lo)
		c.jump(bpf.JumpEqual, vlo, fail, 0)
	case specs.OpMaskedEqual:
		mlo, mhi := uint32(a.Value), uint32(a.Value>>32)
		wlo, whi := uint32(a.ValueTwo), uint32(a.ValueTwo>>32)
		if wide {
			c.load(hi)
			c.and(mhi)
			c.jump(bpf.JumpEqual, whi, 0, fail)
		}
		c.load(lo)
		c.and(mlo)
		c.jump(bpf.JumpEqual, wlo, 0, fail)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		cond := bpf.JumpGreaterThan
		if a.Op == specs.OpGreaterEqual {
			cond = bpf.JumpGreaterOrEqual
		}
		if wide {
			c.load(hi)
			c.jump(bpf.JumpGreaterThan, vhi, 3, 0)
			c.jump(bpf.JumpEqual, vhi, 0, fail)
		}
		c.load(lo)
		c.jump(cond, vlo, 0, fail)
	case specs.OpLessThan, specs.OpLessEqual:
		// A < v fails when A >= v; A <= v fails when A > v.
		cond := bpf.JumpGreaterOrEqual
		if a.Op == specs.OpLessEqual {
			cond = bpf.JumpGreaterThan
		}
		if wide {
			c.load(hi)
			c.jump(bpf.JumpGreaterThan, vhi, fail, 0)
			c.jump(bpf.JumpEqual, vhi, 0, 2)
		}
		c.load(lo)
		c.jump(cond, vlo, fail, 0)
	default:
		return fmt.Errorf("unsupported operator %q", a.Op)
	}
	return nil
}

// finish appends the rule's return and points the failed tests past it.
func (c *condCode) finish(ret uint32) ([]bpf.Instruction, error) {
	c.ins = append(c.ins, bpf.RetConstant{Val: ret})
	end := len(c.ins)
	for _, f := range c.fails {
		skip := end - f.at - 1
		if skip > 255 {
			return nil, errors.New("rule too long")
		}
		j := c.ins[f.at].(bpf.JumpIf)
		if f.onTrue {
			j.SkipTrue = uint8(skip)
		} else {
			j.SkipFalse = uint8(skip)
		}
		c.ins[f.at] = j
	}
	return c.ins, nil
}

// packFilter encodes a filter as struct sock_filter array bytes, the
// compact form the config carries to the init.
func packFilter(f []unix.SockFilter) []byte {
	b := make([]byte, 0, 8*len(f))
	for _, i := range f {
		b = binary.NativeEndian.AppendUint16(b, i.Code)
		b = append(b, i.Jt, i.Jf)
		b = binary.NativeEndian.AppendUint32(b, i.K)
	}
	return b
}

// loadSeccomp installs a packed filter on this thread, which then
// executes the command. It runs in the init while it still has
// CAP_SYS_ADMIN, so that, as in Docker, no_new_privs stays off and setuid
// binaries keep working; only without that capability (an init in a user
// namespace it does not own) does the kernel demand no_new_privs, and
// then it is set. The profile must allow what the init does afterwards
// (setgroups, setresuid, capset, prctl, execve), as with runc.
func loadSeccomp(packed []byte) error {
	if len(packed) == 0 {
		return nil
	}
	f := make([]unix.SockFilter, len(packed)/8)
	for i := range f {
		b := packed[8*i:]
		f[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
	}
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	load := func() unix.Errno {
		_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
		return errno
	}
	errno := load()
	if errno == unix.EACCES {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs for seccomp: %w", err)
		}
		errno = load()
	}
	if errno != 0 {
		return fmt.Errorf("installing seccomp filter: %w", errno)
	}
	return nil
}
