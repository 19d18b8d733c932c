package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData is struct seccomp_data as the x/net/bpf VM reads it: each
// 32-bit word big-endian at the offset where the kernel keeps it.
func seccompData(audit arch.AuditArch, nr int, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[offNr:], uint32(nr))
	binary.BigEndian.PutUint32(b[offArch:], uint32(audit))
	for i, a := range args {
		binary.BigEndian.PutUint32(b[offArgs+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[offArgs+8*i+4:], uint32(a>>32))
	}
	return b
}

// filterVM compiles profile and returns a function that runs the filter
// on one syscall.
func filterVM(t *testing.T, profile string) func(audit arch.AuditArch, nr int, args ...uint64) uint32 {
	t.Helper()
	f, err := compileProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]bpf.RawInstruction, len(f))
	for i, ins := range f {
		raw[i] = bpf.RawInstruction{Op: ins.Code, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	return func(audit arch.AuditArch, nr int, args ...uint64) uint32 {
		ret, err := vm.Run(seccompData(audit, nr, args...))
		if err != nil {
			t.Fatal(err)
		}
		return uint32(ret)
	}
}

func nativeInfo(t *testing.T) *arch.Info {
	t.Helper()
	a, err := nativeArch()
	if err != nil {
		t.Skip(err)
	}
	return seccompArches[a]
}

func sysnr(t *testing.T, info *arch.Info, name string) int {
	t.Helper()
	n, ok := info.SyscallNames[name]
	if !ok {
		t.Fatalf("%s has no %s", info.Name, name)
	}
	return n | info.SeccompMask
}

func TestDefaultSeccompVerdicts(t *testing.T) {
	info := nativeInfo(t)
	run := filterVM(t, "")
	eperm := uint32(retErrno | uint32(unix.EPERM))
	enosys := uint32(retErrno | uint32(unix.ENOSYS))
	const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD
	tests := []struct {
		name string
		args []uint64
		want uint32
	}{
		{"read", nil, retAllow},
		{"execve", nil, retAllow},
		{"keyctl", nil, eperm},
		{"add_key", nil, eperm},
		{"request_key", nil, eperm},
		{"bpf", nil, eperm},
		{"perf_event_open", nil, eperm},
		{"userfaultfd", nil, eperm},
		{"kexec_load", nil, eperm},
		{"open_by_handle_at", nil, eperm},
		{"init_module", nil, eperm},
		{"finit_module", nil, eperm},
		{"delete_module", nil, eperm},
		{"mount", nil, eperm},
		{"umount2", nil, eperm},
		{"pivot_root", nil, eperm},
		{"unshare", []uint64{unix.CLONE_NEWUSER}, eperm},
		{"setns", nil, eperm},
		{"io_uring_setup", nil, eperm},
		{"io_uring_enter", nil, eperm},
		{"io_uring_register", nil, eperm},
		{"clone3", nil, enosys},
		{"clone", []uint64{threadFlags}, retAllow},
		{"clone", []uint64{unix.CLONE_NEWUSER}, eperm},
		{"clone", []uint64{unix.CLONE_NEWNS | uint64(unix.SIGCHLD)}, eperm},
		{"clone", []uint64{1<<32 | uint64(unix.SIGCHLD)}, retAllow},
		{"personality", []uint64{0}, retAllow},
		{"personality", []uint64{8}, retAllow},
		{"personality", []uint64{0xffffffff}, retAllow},
		{"personality", []uint64{0x0040000}, eperm}, // ADDR_NO_RANDOMIZE
		{"socket", []uint64{unix.AF_INET}, retAllow},
		{"socket", []uint64{unix.AF_VSOCK}, eperm},
		{"chroot", nil, retAllow}, // CAP_SYS_CHROOT is a default capability
		{"ptrace", nil, retAllow}, // safe since Linux 4.8, as in Docker
	}
	if info == arch.X86_64 {
		tests = append(tests, []struct {
			name string
			args []uint64
			want uint32
		}{{"iopl", nil, eperm}, {"kexec_file_load", nil, eperm}}...)
	}
	for _, tt := range tests {
		if got := run(info.ID, sysnr(t, info, tt.name), tt.args...); got != tt.want {
			t.Errorf("%s(%#x): got %#x, want %#x", tt.name, tt.args, got, tt.want)
		}
	}
	if got := run(info.ID, 5000); got != enosys {
		t.Errorf("syscall beyond the table: got %#x, want ENOSYS", got)
	}
	if got := run(0x1234, 0); got != retKillProcess {
		t.Errorf("unknown architecture: got %#x, want kill", got)
	}
	// The compat architecture has its own table.
	compat := map[*arch.Info]*arch.Info{arch.X86_64: arch.I386, arch.AARCH64: arch.ARM}[info]
	if compat != nil {
		if got := run(compat.ID, sysnr(t, compat, "keyctl")); got != eperm {
			t.Errorf("%s keyctl: got %#x", compat.Name, got)
		}
		if got := run(compat.ID, sysnr(t, compat, "getpid")); got != retAllow {
			t.Errorf("%s getpid: got %#x", compat.Name, got)
		}
		if got := run(compat.ID, sysnr(t, compat, "personality"), 1<<32|8); got != retAllow {
			t.Errorf("%s personality compares 32 bits: got %#x", compat.Name, got)
		}
	}
}

// TestSeccompOperators checks every comparison of Docker's format,
// across the 32-bit halves of 64-bit arguments.
func TestSeccompOperators(t *testing.T) {
	info := nativeInfo(t)
	nr := sysnr(t, info, "getpid")
	const v = 0x1_0000_0005
	ops := []struct {
		op   string
		pass func(a uint64) bool
	}{
		{"SCMP_CMP_EQ", func(a uint64) bool { return a == v }},
		{"SCMP_CMP_NE", func(a uint64) bool { return a != v }},
		{"SCMP_CMP_GT", func(a uint64) bool { return a > v }},
		{"SCMP_CMP_GE", func(a uint64) bool { return a >= v }},
		{"SCMP_CMP_LT", func(a uint64) bool { return a < v }},
		{"SCMP_CMP_LE", func(a uint64) bool { return a <= v }},
		{"SCMP_CMP_MASKED_EQ", func(a uint64) bool { return a&v == 0x1_0000_0001 }},
	}
	args := []uint64{0, 4, 5, 6, 0x1_0000_0004, v, 0x1_0000_0006, 0x2_0000_0000, 0x5, 0x1_0000_0001, 0xffff_ffff}
	for _, o := range ops {
		value2 := ""
		if o.op == "SCMP_CMP_MASKED_EQ" {
			value2 = `,"valueTwo":4294967297`
		}
		profile := fmt.Sprintf(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
			{"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":7,
			 "args":[{"index":2,"value":%d%s,"op":%q}]}]}`, uint64(v), value2, o.op)
		run := filterVM(t, profile)
		for _, a := range args {
			want := uint32(retAllow)
			if o.pass(a) {
				want = retErrno | 7
			}
			if got := run(info.ID, nr, 0, 0, a); got != want {
				t.Errorf("%s %#x against %#x: got %#x, want %#x", o.op, a, uint64(v), got, want)
			}
		}
	}
}

func TestSeccompProfileErrors(t *testing.T) {
	for _, p := range []string{
		`{`,
		`{"defaultAction":"SCMP_ACT_NOPE"}`,
		`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_NOTIFY"}]}`,
		`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}`,
		`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_LIKE"}]}]}`,
		`{}`,
	} {
		if err := CheckSeccomp(p); err == nil {
			t.Errorf("%s: accepted", p)
		}
	}
	if err := CheckSeccomp(SeccompUnconfined); err != nil {
		t.Error(err)
	}
}

func TestSeccompInRun(t *testing.T) {
	root := newRootfs(t)
	addProbe(t, root)
	script := `grep Seccomp: /proc/self/status
		unshare -U true 2>/dev/null && echo userns-ok || echo userns-denied
		probe keyctl
		probe clone3`
	got := shOK(t, Spec{Rootfs: root}, script+"; true")
	want := "Seccomp:\t2\nuserns-denied\noperation not permitted\nfunction not implemented\n"
	if got != want {
		t.Errorf("default: got %q, want %q", got, want)
	}
	got = shOK(t, Spec{Rootfs: root, Seccomp: SeccompUnconfined}, script+"; true")
	want = "Seccomp:\t0\nuserns-ok\nok\ninvalid argument\n"
	if got != want {
		t.Errorf("unconfined: got %q, want %q", got, want)
	}
	// A non-root user gets the filter too, and setuid still works
	// without no_new_privs.
	got = shOK(t, Spec{Rootfs: root, User: "app"}, `grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status`)
	if want := "NoNewPrivs:\t0\nSeccomp:\t2\n"; got != want {
		t.Errorf("app: got %q, want %q", got, want)
	}
}

func TestSeccompProfileFile(t *testing.T) {
	root := newRootfs(t)
	profile := filepath.Join(t.TempDir(), "profile.json")
	writeFile(t, profile, `{
		"defaultAction": "SCMP_ACT_ALLOW",
		"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
		"syscalls": [
			{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
			{"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO"}
		]}`)
	b, err := os.ReadFile(profile)
	must(t, err)
	got := shOK(t, Spec{Rootfs: root, Seccomp: string(b)}, `
		grep Seccomp: /proc/self/status
		mkdir /d 2>&1 || true
		chmod 600 /etc/passwd 2>&1 || true
		unshare -U true && echo userns-ok`)
	for _, want := range []string{"Seccomp:\t2", "Permission denied", "Operation not permitted", "userns-ok"} {
		if !strings.Contains(got, want) {
			t.Errorf("got %q, want %q in it", got, want)
		}
	}
}

// TestSeccompTreeMatchesRules checks the compiled default filter against
// a plain reading of the resolved profile, for every syscall number of
// the native and compat tables (and a few beyond) with a few argument
// values: the first rule whose conditions hold decides.
func TestSeccompTreeMatchesRules(t *testing.T) {
	info := nativeInfo(t)
	run := filterVM(t, "")
	p, err := mobyseccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{
		Capabilities: &specs.LinuxCapabilities{Bounding: capNamesOf(DefaultCaps)}}})
	must(t, err)
	def, err := seccompRet(p.DefaultAction, p.DefaultErrnoRet)
	must(t, err)
	compat := map[*arch.Info]*arch.Info{arch.X86_64: arch.I386, arch.AARCH64: arch.ARM}[info]
	for _, table := range []*arch.Info{info, compat} {
		if table == nil {
			continue
		}
		wide := table == info
		maxNr := 0
		for n := range table.SyscallNumbers {
			maxNr = max(maxNr, n)
		}
		for nr := 0; nr <= maxNr+3; nr++ {
			for _, arg := range []uint64{0, 8, unix.CLONE_NEWUSER, 0xffffffff, 1 << 40} {
				want := def
				if nr > maxNr {
					want = retErrno | uint32(unix.ENOSYS)
				}
				if name, ok := table.SyscallNumbers[nr]; ok {
					want = referenceVerdict(t, p, name, arg, wide, def)
				}
				if got := run(table.ID, nr, arg, arg, arg); got != want {
					t.Fatalf("%s %d (%s) with %#x: got %#x, want %#x", table.Name, nr, table.SyscallNumbers[nr], arg, got, want)
				}
			}
		}
	}
}

// referenceVerdict reads the profile for one call whose arguments all
// equal arg.
func referenceVerdict(t *testing.T, p *specs.LinuxSeccomp, name string, arg uint64, wide bool, def uint32) uint32 {
	if !wide {
		arg &= 0xffffffff
	}
	for _, sc := range p.Syscalls {
		if !slices.Contains(sc.Names, name) {
			continue
		}
		ret, err := seccompRet(sc.Action, sc.ErrnoRet)
		must(t, err)
		alts, err := argAlternatives(sc.Args)
		must(t, err)
		for _, args := range alts {
			holds := true
			for _, c := range args {
				v, v2 := c.Value, c.ValueTwo
				if !wide {
					v, v2 = v&0xffffffff, v2&0xffffffff
				}
				switch c.Op {
				case specs.OpEqualTo:
					holds = holds && arg == v
				case specs.OpNotEqual:
					holds = holds && arg != v
				case specs.OpLessThan:
					holds = holds && arg < v
				case specs.OpLessEqual:
					holds = holds && arg <= v
				case specs.OpGreaterThan:
					holds = holds && arg > v
				case specs.OpGreaterEqual:
					holds = holds && arg >= v
				case specs.OpMaskedEqual:
					holds = holds && arg&v == v2
				}
			}
			if holds {
				return ret
			}
		}
	}
	return def
}

// TestSeccompX32: x32 calls (x86_64's audit architecture, numbers from
// 0x40000000) are killed by a profile that does not list x32, even with
// defaultAction ALLOW, and follow the profile when it lists x32.
func TestSeccompX32(t *testing.T) {
	if nativeInfo(t) != arch.X86_64 {
		t.Skip("x32 is an x86_64 ABI")
	}
	keyctl := sysnr(t, arch.X32, "keyctl")
	const deny = `{"defaultAction":"SCMP_ACT_ALLOW","architectures":[%s],"syscalls":[{"names":["keyctl"],"action":"SCMP_ACT_ERRNO"}]}`
	run := filterVM(t, fmt.Sprintf(deny, `"SCMP_ARCH_X86_64"`))
	for _, nr := range []int{keyctl, sysnr(t, arch.X32, "getpid"), 0x40000000, 0xffffffff} {
		if got := run(arch.X86_64.ID, nr); got != retKillProcess {
			t.Errorf("x32 call %#x without x32 in the profile: got %#x, want kill", nr, got)
		}
	}
	if got := run(arch.X86_64.ID, sysnr(t, arch.X86_64, "getpid")); got != retAllow {
		t.Errorf("x86_64 getpid: got %#x", got)
	}
	run = filterVM(t, fmt.Sprintf(deny, `"SCMP_ARCH_X86_64","SCMP_ARCH_X32"`))
	if got := run(arch.X86_64.ID, keyctl); got != retErrno|uint32(unix.EPERM) {
		t.Errorf("x32 keyctl with x32 in the profile: got %#x, want EPERM", got)
	}
	if got := run(arch.X86_64.ID, sysnr(t, arch.X32, "getpid")); got != retAllow {
		t.Errorf("x32 getpid with x32 in the profile: got %#x, want allow", got)
	}
}
