package runtime

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

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
	// Dispatch on the architecture, then the verdict for any other.
	a := &asm{}
	a.emit(bpf.LoadAbsolute{Off: offArch, Size: 4})
	blocks := make([]label, len(order))
	for i, id := range order {
		blocks[i] = a.newLabel()
		a.jumpIf(bpf.JumpEqual, uint32(id), next, skip1)
		a.jump(blocks[i])
	}
	a.emit(bpf.RetConstant{Val: retKillProcess})
	for i, id := range order {
		a.mark(blocks[i])
		if err := archBlock(a, p, tables[id], def); err != nil {
			return nil, err
		}
	}
	prog, err := a.resolve()
	if err != nil {
		return nil, err
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
// syscall number and always returns. The syscalls with rules are found
// by a binary search over their numbers, so that the kernel, which
// evaluates the filter once per syscall number when it is installed to
// cache the calls it always allows, and every filtered call, take a
// few dozen instructions rather than hundreds.
func archBlock(a *asm, p *specs.LinuxSeccomp, infos []*arch.Info, def uint32) error {
	wide := infos[0] != arch.I386 && infos[0] != arch.ARM
	rules := map[uint32][]seccompRule{}
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
			return fmt.Errorf("syscalls[%d]: %w", i, err)
		}
		alts, err := argAlternatives(sc.Args)
		if err != nil {
			return fmt.Errorf("syscalls[%d]: %w", i, err)
		}
		for _, name := range sc.Names {
			for _, info := range infos {
				if n, ok := info.SyscallNames[name]; ok {
					nr := uint32(n | info.SeccompMask)
					for _, args := range alts {
						rules[nr] = append(rules[nr], seccompRule{ret, args})
					}
				}
			}
		}
	}
	nrs := slices.Sorted(maps.Keys(rules))
	// A number no rule names gets the default action; beyond the table,
	// ENOSYS when the default denies.
	miss := []bpf.Instruction{bpf.RetConstant{Val: def}}
	if def&0xffff0000 != retAllow && def&0xffff0000 != retLog {
		miss = []bpf.Instruction{
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: maxNr, SkipFalse: 1},
			bpf.RetConstant{Val: retErrno | uint32(unix.ENOSYS)},
			bpf.RetConstant{Val: def},
		}
	}
	a.emit(bpf.LoadAbsolute{Off: offNr, Size: 4})
	if infos[0] == arch.X86_64 && !contains(infos, arch.X32) {
		// x32 calls share x86_64's audit architecture, numbered from
		// 0x40000000; a profile that does not list x32 kills them, as
		// libseccomp does, instead of giving them the default action.
		a.emit(
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: uint32(arch.X32.SeccompMask), SkipFalse: 1},
			bpf.RetConstant{Val: retKillProcess},
		)
	}
	bodies := map[uint32]label{}
	missLabel := a.newLabel()
	searchTree(a, nrs, rules, bodies, missLabel)
	a.mark(missLabel)
	a.emit(miss...)
	for _, nr := range nrs {
		l, ok := bodies[nr]
		if !ok {
			continue
		}
		body, err := ruleBody(rules[nr], def, wide)
		if err != nil {
			return err
		}
		a.mark(l)
		a.emit(body...)
	}
	return nil
}

// leafSize is how many syscall numbers a leaf of the search tree tests
// one after the other.
const leafSize = 16

// searchTree emits the binary search over nrs (sorted). A syscall with
// one unconditional rule returns its verdict in the leaf; the others jump
// to their rule body, which archBlock places after the tree (bodies
// gets its label). A number not in nrs jumps to miss.
func searchTree(a *asm, nrs []uint32, rules map[uint32][]seccompRule, bodies map[uint32]label, miss label) {
	if len(nrs) > leafSize {
		mid := len(nrs) / 2
		right := a.newLabel()
		a.jumpIf(bpf.JumpGreaterOrEqual, nrs[mid], next, skip1)
		a.jump(right)
		searchTree(a, nrs[:mid], rules, bodies, miss)
		a.mark(right)
		searchTree(a, nrs[mid:], rules, bodies, miss)
		return
	}
	// One test per number, then the miss, then one return per verdict
	// and one jump per rule body: every jump stays short.
	type tail struct {
		l, body label
		ret     uint32
	}
	var tails []tail
	rets := map[uint32]label{}
	for _, nr := range nrs {
		r := rules[nr]
		if len(r) == 1 && len(r[0].args) == 0 {
			l, ok := rets[r[0].ret]
			if !ok {
				l = a.newLabel()
				rets[r[0].ret] = l
				tails = append(tails, tail{l: l, body: none, ret: r[0].ret})
			}
			a.jumpIf(bpf.JumpEqual, nr, l, next)
			continue
		}
		bodies[nr] = a.newLabel()
		l := a.newLabel()
		tails = append(tails, tail{l: l, body: bodies[nr]})
		a.jumpIf(bpf.JumpEqual, nr, l, next)
	}
	a.jump(miss)
	for _, t := range tails {
		a.mark(t.l)
		if t.body != none {
			a.jump(t.body)
		} else {
			a.emit(bpf.RetConstant{Val: t.ret})
		}
	}
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

// label names a position in an asm program.
type label int

// Jump targets that are no label.
const (
	none  label = -1 // no target
	next  label = -2 // the next instruction
	skip1 label = -3 // the instruction after the next
)

// asm collects classic BPF with forward jumps to labels, resolved at the
// end. Conditional jumps reach at most 255 instructions; the code is laid
// out so that longer distances use an unconditional jump.
type asm struct {
	ins  []bpf.Instruction
	at   []int // position of each label, -1 until marked
	refs []asmRef
}

type asmRef struct {
	at   int
	l    label
	kind int // 0: Jump, 1: true branch, 2: false branch
}

func (a *asm) newLabel() label {
	a.at = append(a.at, -1)
	return label(len(a.at) - 1)
}

func (a *asm) mark(l label) { a.at[l] = len(a.ins) }

func (a *asm) emit(ins ...bpf.Instruction) { a.ins = append(a.ins, ins...) }

func (a *asm) jump(l label) {
	a.refs = append(a.refs, asmRef{len(a.ins), l, 0})
	a.emit(bpf.Jump{})
}

// jumpIf adds a conditional jump to t when it holds and to f otherwise.
func (a *asm) jumpIf(cond bpf.JumpTest, val uint32, t, f label) {
	j := bpf.JumpIf{Cond: cond, Val: val}
	for kind, l := range []label{t, f} {
		switch l {
		case next:
		case skip1:
			if kind == 0 {
				j.SkipTrue = 1
			} else {
				j.SkipFalse = 1
			}
		default:
			a.refs = append(a.refs, asmRef{len(a.ins), l, kind + 1})
		}
	}
	a.emit(j)
}

// resolve fills in the jumps.
func (a *asm) resolve() ([]bpf.Instruction, error) {
	for _, r := range a.refs {
		to := a.at[r.l]
		off := to - r.at - 1
		if to < 0 || off < 0 {
			return nil, errors.New("filter jumps backwards or to an unplaced label")
		}
		if r.kind == 0 {
			a.ins[r.at] = bpf.Jump{Skip: uint32(off)}
			continue
		}
		if off > 255 {
			return nil, errors.New("filter has a conditional jump beyond 255 instructions")
		}
		j := a.ins[r.at].(bpf.JumpIf)
		if r.kind == 1 {
			j.SkipTrue = uint8(off)
		} else {
			j.SkipFalse = uint8(off)
		}
		a.ins[r.at] = j
	}
	return a.ins, nil
}
