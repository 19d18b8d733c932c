package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/parser"
)

// RunIndex builds plans, one per target platform (each parsed with
// parser.Options.Platform set to its platform), and returns their images
// and the index of them (Result.Images and Result.Index). Each target is its own graph of stages, but a
// stage that resolves to the same thing for every target (typically
// `FROM --platform=$BUILDPLATFORM`, reading no TARGET* ARG) is built
// once and shared; independent stages of all targets run in parallel, at
// most opts.Jobs at a time. opts.Platform is ignored.
func RunIndex(ctx context.Context, plans []*parser.Plan, opts Options) (*Result, error) {
	if len(plans) == 0 {
		return nil, errors.New("builder: no target platform")
	}
	seen := map[string]bool{}
	for _, p := range plans {
		if seen[p.Platform] {
			return nil, fmt.Errorf("--platform lists %s twice", p.Platform)
		}
		seen[p.Platform] = true
	}
	if opts.Store == nil {
		return nil, errors.New("builder: store and snapshotter are required")
	}
	// The images are saved by buildAll; hold the store until the index
	// that references them is saved too.
	release, err := opts.Store.Hold(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	res, err := runAll(ctx, plans, opts)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, r := range res {
		cf, err := r.Image.ConfigFile()
		if err != nil {
			return nil, err
		}
		p := cf.Platform()
		if p == nil || p.OS == "" {
			p = &r.Platform
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        r.Image,
			Descriptor: v1.Descriptor{Platform: p},
		})
	}
	dgst, err := image.SaveIndex(ctx, opts.Store, idx)
	if err != nil {
		return nil, fmt.Errorf("saving image index: %w", err)
	}
	out := &Result{Images: res, Index: idx, Digest: dgst}
	for _, r := range res {
		out.chains.target = append(out.chains.target, r.chains.target...)
		out.chains.all = append(out.chains.all, r.chains.all...)
	}
	return out, nil
}

// shareStages points the futures of every stage that is the same for all
// targets at the first build's, so it runs once. A stage is the same when
// its platform and base resolve alike, every ARG it declares (or
// inherits from a stage it is built FROM) has the same global value, and
// every stage it reads is shared too. Everything else a stage does is
// fixed by the recipe text, which all targets share.
func shareStages(builds []*build) {
	if len(builds) < 2 {
		return
	}
	first := builds[0]
	for i := range first.plan.Stages {
		if first.stages[i] == nil {
			continue
		}
		same := true
		for _, b := range builds[1:] {
			same = same && sameStage(first.plan, b, i)
		}
		if !same {
			continue
		}
		first.shared[i] = true
		for _, b := range builds[1:] {
			b.stages[i], b.foreign[i] = first.stages[i], true
		}
	}
}

// sameStage reports whether stage i builds the same in plan a and in
// build b (whose earlier stages are decided: b.foreign).
func sameStage(a *parser.Plan, b *build, i int) bool {
	bp := b.plan
	sa, sb := a.Stages[i], bp.Stages[i]
	if a.StagePlatform(i) != bp.StagePlatform(i) || sa.From != sb.From || sa.FromStage != sb.FromStage {
		return false
	}
	for _, d := range sb.Deps {
		if !b.foreign[d] {
			return false
		}
	}
	for st := sa; ; st = a.Stages[st.FromStage] {
		for _, k := range st.ArgNames() {
			va, oka := a.GlobalArgs[k]
			vb, okb := bp.GlobalArgs[k]
			if va != vb || oka != okb {
				return false
			}
		}
		if st.FromStage < 0 {
			return true
		}
	}
}

// platformOf is the platform stage st is built for.
func (b *build) platformOf(st *parser.Stage) v1.Platform {
	if b.plan.StagePlatform(st.Index) == b.plan.Platform || b.plan.Platform == "" && st.Platform == "" {
		return b.opts.Platform
	}
	p, err := v1.ParsePlatform(b.plan.StagePlatform(st.Index))
	if err != nil {
		return b.opts.Platform
	}
	return *p
}

// checkPlatform warns when a base image is for another platform than
// the stage: BuildKit uses such an image anyway, and so does lading.
func (b *build) checkPlatform(st *parser.Stage, cfg *v1.ConfigFile) {
	want := b.platformOf(st)
	if cfg.OS == "" || cfg.Architecture == "" {
		return
	}
	have := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if samePlatform(have, want) {
		return
	}
	b.rep.Log("warning: %s: FROM %s: the image is for %s, not %s as the stage; using it anyway", st.Loc, st.From, platformString(have), platformString(want))
}

// samePlatform compares platforms as containerd's matcher does: arm64 is
// arm64/v8, arm is arm/v7.
func samePlatform(a, b v1.Platform) bool {
	return a.OS == b.OS && a.Architecture == b.Architecture && normVariant(a) == normVariant(b)
}

func normVariant(p v1.Platform) string {
	switch {
	case p.Architecture == "arm64" && p.Variant == "":
		return "v8"
	case p.Architecture == "arm" && p.Variant == "":
		return "v7"
	}
	return p.Variant
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// nativeArchs are the architectures this machine runs without emulation.
func nativeArchs() []string {
	h := hostPlatform().Architecture
	switch h {
	case "amd64":
		return []string{"amd64", "386"}
	case "arm64":
		return []string{"arm64", "arm"}
	}
	return []string{h}
}

// qemuNames maps OCI architectures to QEMU's binfmt_misc handler names.
var qemuNames = map[string]string{
	"amd64": "x86_64", "386": "i386", "arm64": "aarch64", "arm": "arm",
	"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
	"mips64le": "mips64el", "loong64": "loongarch64",
}

// binfmtDir is where the kernel lists binfmt_misc handlers.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

// NativeArch reports whether this machine runs binaries of arch (an OCI
// architecture name) without emulation.
func NativeArch(arch string) bool { return slices.Contains(nativeArchs(), arch) }

// checkEmulation fails a RUN whose rootfs holds binaries of a platform this
// machine cannot run natively when no binfmt_misc handler for it is
// registered: the user must enable QEMU user emulation, lading never
// registers handlers by itself.
func checkEmulation(p v1.Platform) error {
	if p.Architecture == "" || NativeArch(p.Architecture) {
		return nil
	}
	if ok, _ := BinfmtEnabled(p.Architecture); ok {
		return nil
	}
	return fmt.Errorf("cannot run %s binaries on this %s machine: no binfmt_misc handler is registered for %s; "+
		"enable QEMU user emulation (Debian: apt-get install qemu-user-static binfmt-support; "+
		"or `lading binfmt --install` as root)", platformString(p), platformString(hostPlatform()), p.Architecture)
}

// BinfmtEnabled reports whether the kernel has an enabled binfmt_misc
// handler for architecture arch (OCI name, e.g. arm64), and its name.
func BinfmtEnabled(arch string) (bool, string) {
	q, ok := qemuNames[arch]
	if !ok {
		q = arch
	}
	name := "qemu-" + q
	data, err := os.ReadFile(filepath.Join(binfmtDir, name))
	if err != nil {
		return false, name
	}
	return strings.HasPrefix(string(data), "enabled"), name
}
