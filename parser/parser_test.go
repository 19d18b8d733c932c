package parser

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func mustParse(t *testing.T, src string, opts Options) *Plan {
	t.Helper()
	if opts.File == "" {
		opts.File = "Recipe"
	}
	if opts.Platform == "" {
		opts.Platform = "linux/amd64"
	}
	p, err := Parse(strings.NewReader(src), opts)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		opts   Options
		prefix string // exact "FILE:LINE: " prefix
		msg    string // substring of the rest
	}{
		{"empty", "", Options{}, "Recipe:1: ", "no FROM instruction"},
		{"comments only", "# hello\n\n# world\n", Options{}, "Recipe:1: ", "no FROM instruction"},
		{"args only", "\nARG A=1\nARG B\n", Options{}, "Recipe:2: ", "no FROM instruction"},
		{"binary NUL", "FROM a\n\x00\x01\x02garbage\n", Options{}, "Recipe:2: ", "binary data"},
		{"invalid utf8", "FROM a\nRUN echo \xff\xfe\n", Options{}, "Recipe:2: ", "not valid UTF-8"},
		{"unknown instruction", "FROM a\n\nFOO bar\n", Options{}, "Recipe:3: ", "unknown instruction: FOO"},
		{"unknown instruction before FROM", "BAR x\nFROM a\n", Options{}, "Recipe:1: ", "unknown instruction: BAR"},
		{"instruction before FROM", "ARG X\nRUN x\nFROM a\n", Options{}, "Recipe:2: ", "RUN before the first FROM"},
		{"bad flag", "FROM a\nCOPY --bogus=1 a b\n", Options{}, "Recipe:2: ", "unknown flag: --bogus"},
		{"bad mount type", "FROM a\nRUN --mount=type=nope true\n", Options{}, "Recipe:2: ", `unsupported mount type "nope"`},
		{"bad mount key", "FROM a\nRUN --mount=type=bind,colour=red true\n", Options{}, "Recipe:2: ", "unexpected key 'colour'"},
		{"mount from variable", "FROM a\nRUN --mount=from=$X true\n", Options{}, "Recipe:2: ", "doesn't support variable expansion"},
		{"bad network", "FROM a\nRUN --network=bogus true\n", Options{}, "Recipe:2: ", "invalid network mode"},
		{"copy one arg", "FROM a\nCOPY onlyone\n", Options{}, "Recipe:2: ", "COPY requires at least two arguments"},
		{"expose none", "FROM a\nEXPOSE\n", Options{}, "Recipe:2: ", "EXPOSE requires at least one argument"},
		{"workdir none", "FROM a\nWORKDIR\n", Options{}, "Recipe:2: ", "WORKDIR requires exactly one argument"},
		{"from two args", "FROM a b\n", Options{}, "Recipe:1: ", "FROM requires either one or three arguments"},
		{"shell not json", "FROM a\nSHELL sh -c\n", Options{}, "Recipe:2: ", "JSON"},
		{"healthcheck interval", "FROM a\nHEALTHCHECK --interval=x CMD true\n", Options{}, "Recipe:2: ", "invalid duration"},
		{"unterminated heredoc", "FROM a\nRUN true\nRUN <<EOF\necho hi\n", Options{}, "Recipe:3: ", "unterminated heredoc"},
		{"invalid stage name", "FROM a AS 1bad\n", Options{}, "Recipe:1: ", "invalid name for build stage"},
		{"duplicate stage name", "FROM a AS x\nRUN true\nFROM b AS X\n", Options{}, "Recipe:3: ", `duplicate stage name "x" (first defined at line 1)`},
		{"copy from self", "FROM a AS x\nCOPY --from=x /a /b\n", Options{}, "Recipe:2: ", "circular stage reference"},
		{"copy from self index", "FROM a\nCOPY --from=0 /a /b\n", Options{}, "Recipe:2: ", "circular stage reference"},
		{"copy from later", "FROM a AS x\nCOPY --from=y /a /b\nFROM b AS y\n", Options{}, "Recipe:2: ", "forward stage reference"},
		{"copy from later index", "FROM a\nCOPY --from=1 /a /b\nFROM b\n", Options{}, "Recipe:2: ", "forward stage reference"},
		{"copy from missing index", "FROM a\nFROM b\nCOPY --from=7 /a /b\n", Options{}, "Recipe:3: ", "invalid stage index 7"},
		{"copy from empty", "FROM a\nCOPY --from=$NOPE /a /b\n", Options{}, "Recipe:2: ", "empty reference"},
		{"mount from later", "FROM a\nRUN --mount=from=z,target=/z true\nFROM b AS z\n", Options{}, "Recipe:2: ", "forward stage reference"},
		{"from empty", "ARG BASE\nFROM $BASE\n", Options{}, "Recipe:2: ", "empty base name"},
		{"from bad substitution", "FROM ${BASE:?}\n", Options{}, "Recipe:1: ", "expanding FROM"},
		{"bad platform", "FROM --platform=nope a\n", Options{}, "Recipe:1: ", `invalid platform "nope"`},
		{"bad escape", "# escape=x\nFROM a\n", Options{}, "Recipe:1: ", "invalid escape token"},
		{"repeated escape", "# escape=`\n# escape=\\\nFROM a\n", Options{}, "Recipe:2: ", "only one escape parser directive"},
		{"onbuild onbuild", "FROM a\nONBUILD ONBUILD RUN x\n", Options{}, "Recipe:2: ", "ONBUILD ONBUILD"},
		{"onbuild from", "FROM a\nONBUILD FROM b\n", Options{}, "Recipe:2: ", "FROM isn't allowed"},
		{"onbuild bad trigger", "FROM a\nONBUILD COPY x\n", Options{}, "Recipe:2: ", "ONBUILD COPY: COPY requires"},
		{"long line", "FROM a\nRUN " + strings.Repeat("x", 70000) + "\n", Options{}, "Recipe:2: ", "longer than"},
		{"unknown target", "FROM a AS x\n", Options{Target: "nosuch"}, "Recipe: ", `target stage "nosuch" not found`},
		{"target index out of range", "FROM a\n", Options{Target: "1"}, "Recipe: ", `target stage "1" not found`},
		{"bad platform option", "FROM a\n", Options{Platform: "linux"}, "Recipe: ", "invalid platform"},
		{"other file name", "FROM a\nFOO\n", Options{File: "build/Containerfile"}, "build/Containerfile:2: ", "unknown instruction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.File == "" {
				tt.opts.File = "Recipe"
			}
			_, err := Parse(strings.NewReader(tt.src), tt.opts)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is a %T, want *Error", err, err)
			}
			got := err.Error()
			if !strings.HasPrefix(got, tt.prefix) || !strings.Contains(strings.TrimPrefix(got, tt.prefix), tt.msg) {
				t.Errorf("error = %q, want prefix %q and %q", got, tt.prefix, tt.msg)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseReadErrors(t *testing.T) {
	_, err := Parse(errReader{}, Options{File: "R"})
	if err == nil || err.Error() != "R: reading recipe: disk on fire" {
		t.Errorf("read error = %v", err)
	}
	big := io.MultiReader(strings.NewReader("FROM a\nRUN "), strings.NewReader(strings.Repeat("x", MaxRecipeSize)))
	_, err = Parse(big, Options{File: "R"})
	if err == nil || !strings.HasPrefix(err.Error(), "R: recipe is larger than") {
		t.Errorf("size error = %v", err)
	}
}

func TestLongestLine(t *testing.T) {
	line := "RUN " + strings.Repeat("x", maxLineSize-4)
	p := mustParse(t, "FROM a\n"+line+"\n", Options{})
	if got := p.Stages[0].Steps[0].Text; got != line {
		t.Errorf("longest line changed: %d bytes, want %d", len(got), len(line))
	}
}

func TestGlobalArgs(t *testing.T) {
	src := `ARG A=a
ARG B=${A}b
ARG C=${UNDEF:-c}${A:++}
ARG D
ARG E
ARG TARGETARCH
FROM x
`
	p := mustParse(t, src, Options{
		BuildArgs: map[string]string{"A": "override", "E": "e", "NOTDECLARED": "z"},
		Platform:  "linux/arm/v6",
	})
	want := map[string]string{
		"A": "override", "B": "overrideb", "C": "c+", "E": "e",
		"TARGETPLATFORM": "linux/arm/v6", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v6",
		"BUILDPLATFORM": hostPlatform().String(), "BUILDOS": "linux", "BUILDARCH": hostPlatform().arch, "BUILDVARIANT": hostPlatform().variant,
		"BUILDOSVERSION": "", "TARGETOSVERSION": "", "TARGETSTAGE": "default",
	}
	if !reflect.DeepEqual(p.GlobalArgs, want) {
		t.Errorf("GlobalArgs = %v\nwant %v", p.GlobalArgs, want)
	}
	if p.BuildArgs["NOTDECLARED"] != "z" {
		t.Errorf("BuildArgs lost a value: %v", p.BuildArgs)
	}
}

func TestHostPlatform(t *testing.T) {
	p, err := Parse(strings.NewReader("FROM a\n"), Options{File: "R"})
	if err != nil {
		t.Fatal(err)
	}
	if p.GlobalArgs["TARGETPLATFORM"] != hostPlatform().String() || p.GlobalArgs["TARGETOS"] == "" {
		t.Errorf("host platform args = %v", p.GlobalArgs)
	}
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64":     "linux/amd64",
		"Linux/x86_64":    "linux/amd64",
		"linux/aarch64":   "linux/arm64",
		"linux/arm64/v8":  "linux/arm64",
		"linux/arm":       "linux/arm/v7",
		"linux/armhf":     "linux/arm/v7",
		"linux/arm/v6":    "linux/arm/v6",
		"linux/riscv64":   "linux/riscv64",
		"windows/amd64":   "windows/amd64",
		"linux/ppc64le/x": "linux/ppc64le/x",
	} {
		p, err := parsePlatform(in)
		if err != nil || p.String() != want {
			t.Errorf("parsePlatform(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "linux", "linux/", "/amd64", "a/b/c/d", "linux/$X"} {
		if _, err := parsePlatform(in); err == nil {
			t.Errorf("parsePlatform(%q) succeeded", in)
		}
	}
}

// expandStep parses src, expands step i of the last stage with env and
// returns the command.
func expandStep(t *testing.T, p *Plan, i int, env ...string) instructions.Command {
	t.Helper()
	st := p.Stages[len(p.Stages)-1]
	cmd, err := p.expand(st.Steps[i], env, nil)
	if err != nil {
		t.Fatalf("Expand(%s): %v", st.Steps[i].Text, err)
	}
	return cmd
}

func argValues(c instructions.Command) map[string]string {
	m := map[string]string{}
	for _, kv := range c.(*instructions.ArgCommand).Args {
		if kv.Value == nil {
			m[kv.Key] = "<nil>"
		} else {
			m[kv.Key] = *kv.Value
		}
	}
	return m
}

func TestArgScoping(t *testing.T) {
	src := `ARG G=global
ARG H=h
FROM x
ARG G
ARG H=local-$H
ARG L=${G}-l
ARG N
ARG B
ARG TARGETARCH
`
	p := mustParse(t, src, Options{BuildArgs: map[string]string{"B": "from-cli"}})
	// G without default takes the global value.
	if got := argValues(expandStep(t, p, 0)); got["G"] != "global" {
		t.Errorf("ARG G = %q, want global", got["G"])
	}
	// A default is expanded with the env the builder passes: the global H
	// is not in scope in the stage, so $H is empty.
	if got := argValues(expandStep(t, p, 1)); got["H"] != "local-" {
		t.Errorf("ARG H = %q, want %q", got["H"], "local-")
	}
	// A default may refer to an earlier ARG (passed in env by the builder).
	if got := argValues(expandStep(t, p, 2, "G=global")); got["L"] != "global-l" {
		t.Errorf("ARG L = %q, want global-l", got["L"])
	}
	// No default, no global, no build arg: no value.
	if got := argValues(expandStep(t, p, 3)); got["N"] != "<nil>" {
		t.Errorf("ARG N = %q, want no value", got["N"])
	}
	// A build arg wins.
	if got := argValues(expandStep(t, p, 4)); got["B"] != "from-cli" {
		t.Errorf("ARG B = %q, want from-cli", got["B"])
	}
	// Automatic platform args are available when declared.
	if got := argValues(expandStep(t, p, 5)); got["TARGETARCH"] != "amd64" {
		t.Errorf("ARG TARGETARCH = %q, want amd64", got["TARGETARCH"])
	}
	// Global ARGs are visible in FROM only.
	p = mustParse(t, "ARG V=3.20\nFROM alpine:$V\nRUN echo $V\nWORKDIR /v$V\n", Options{})
	if p.Stages[0].From != "alpine:3.20" {
		t.Errorf("From = %q", p.Stages[0].From)
	}
	if w := expandStep(t, p, 1).(*instructions.WorkdirCommand); w.Path != "/v" {
		t.Errorf("WORKDIR = %q, want /v (global ARG not in scope)", w.Path)
	}
}

func TestFromExpansion(t *testing.T) {
	tests := []struct {
		src  string
		args map[string]string
		want string
	}{
		{"FROM ${BASE:-alpine}\n", nil, "alpine"},
		{"ARG BASE=debian\nFROM ${BASE:-alpine}\n", nil, "debian"},
		{"ARG BASE=debian\nFROM ${BASE:-alpine}\n", map[string]string{"BASE": "ubuntu"}, "ubuntu"},
		{"ARG T=1\nFROM img:${T:+v}$T\n", nil, "img:v1"},
		{"ARG T\nFROM img${T:+:v}$T\n", nil, "img"},
		{"ARG R=reg.io\nARG N=app\nFROM $R/$N\n", nil, "reg.io/app"},
		{"FROM oci-archive:/tmp/base.tar\n", nil, "oci-archive:/tmp/base.tar"},
	}
	for _, tt := range tests {
		p := mustParse(t, tt.src, Options{BuildArgs: tt.args})
		if got := p.Stages[len(p.Stages)-1].From; got != tt.want {
			t.Errorf("%q: From = %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestExpand(t *testing.T) {
	src := `FROM x
ENV A=$V B=${V:-def} C=${U:-def} D=${V:+set} E=${U:+set} F=\$V G='$V'
COPY --chown=$USR:$USR --chmod=${MODE} $SRC/a /dst/$V/
ADD $SRC/b ${DST:-/opt}
WORKDIR /w/${V}
USER ${USR}
VOLUME $V /vol2
EXPOSE $PORT 90
LABEL $V=${V}
STOPSIGNAL $SIG
RUN --mount=type=cache,target=$CACHE echo $V
CMD echo $V
COPY <<EOT /expanded
$V
EOT
COPY <<'EOT' /literal
$V
EOT
`
	env := []string{"V=old", "USR=app", "MODE=0755", "SRC=src", "PORT=80 81", "SIG=SIGINT", "CACHE=/c", "V=val"}
	p := mustParse(t, src, Options{})
	for _, tc := range []struct {
		i    int
		want string
	}{
		{0, `env A="val" B="val" C="def" D="set" E="" F="$V" G="$V"`},
		{1, `copy from="" src=["src/a"] dest="/dst/val/" chown="app:app" chmod="0755" link=false parents=false exclude=[]`},
		{2, `add src=["src/b"] dest="/opt" chown="" chmod="" checksum=""`},
		{3, `workdir "/w/val"`},
		{4, `user "app"`},
		{5, `volume ["val" "/vol2"]`},
		{6, `expose ["80" "81" "90"]`},
		{7, `label val="val"`},
		{8, `stopsignal "SIGINT"`},
		{10, `cmd shell=true ["echo $V"]`},
		{11, `copy from="" src=[] dest="/expanded" chown="" chmod="" link=false parents=false exclude=[] heredoc[EOT expand=true]="val\n"`},
		{12, `copy from="" src=[] dest="/literal" chown="" chmod="" link=false parents=false exclude=[] heredoc[EOT expand=false]="$V\n"`},
	} {
		if got := describe(expandStep(t, p, tc.i, env...)); got != tc.want {
			t.Errorf("step %d:\n got %s\nwant %s", tc.i, got, tc.want)
		}
	}
	// RUN: mount options are expanded, the command is left to the shell.
	run := expandStep(t, p, 9, env...).(*instructions.RunCommand)
	if got := run.CmdLine; !reflect.DeepEqual(got, []string{"echo $V"}) {
		t.Errorf("RUN command = %q, want it unexpanded", got)
	}
	if m := instructions.GetMounts(run); len(m) != 1 || m[0].Target != "/c" || m[0].Type != instructions.MountTypeCache {
		t.Errorf("RUN mounts = %+v", m)
	}
}

func TestExpandEscape(t *testing.T) {
	p := mustParse(t, "# escape=`\nFROM x\nWORKDIR C:\\dir\\$V\nENV A=`$V B=$V\n", Options{})
	if w := expandStep(t, p, 0, "V=v").(*instructions.WorkdirCommand); w.Path != `C:\dir\v` {
		t.Errorf("WORKDIR = %q, want C:\\dir\\v", w.Path)
	}
	if got := describe(expandStep(t, p, 1, "V=v")); got != `env A="$V" B="v"` {
		t.Errorf("ENV = %s", got)
	}
	if got, err := p.ExpandWord("a`$V-$V", []string{"V=1"}); err != nil || got != "a$V-1" {
		t.Errorf("ExpandWord = %q, %v", got, err)
	}
}

func TestExpandWord(t *testing.T) {
	p := mustParse(t, "FROM x\n", Options{})
	env := []string{"A=1", "B=", "A=2"}
	for word, want := range map[string]string{
		"$A":          "2",
		"${A}x":       "2x",
		"${B:-d}":     "d",
		"${B-d}":      "",
		"${C:-d}":     "d",
		"${A:+w}":     "w",
		"${C:+w}":     "",
		`\$A`:         "$A",
		`'$A'`:        "$A",
		`"$A b"`:      "2 b",
		"${A#2}":      "",
		"plain words": "plain words",
	} {
		got, err := p.ExpandWord(word, env)
		if err != nil || got != want {
			t.Errorf("ExpandWord(%q) = %q, %v; want %q", word, got, err, want)
		}
	}
	if _, err := p.ExpandWord("${A:?}", nil); err == nil {
		t.Error("ExpandWord(${A:?}) succeeded for an unset variable")
	}
}

func TestExpandErrors(t *testing.T) {
	p := mustParse(t, "FROM x\n\nWORKDIR ${V:?V is required}\nRUN --mount=type=$T true\n", Options{})
	_, err := p.Expand(p.Stages[0].Steps[0], nil)
	var pe *Error
	if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "Recipe:3: WORKDIR") {
		t.Errorf("Expand error = %v, want *Error at Recipe:3", err)
	}
	_, err = p.Expand(p.Stages[0].Steps[1], []string{"T=nope"})
	if err == nil || !strings.HasPrefix(err.Error(), "Recipe:4: ") || !strings.Contains(err.Error(), "unsupported mount type") {
		t.Errorf("Expand error = %v, want an unsupported mount type at Recipe:4", err)
	}
	if _, err := p.Expand(&Step{Text: "RUN x"}, nil); err == nil {
		t.Error("Expand of a hand-made step succeeded")
	}
}

// TestExpandFresh checks that Expand never changes the Plan and is safe
// for concurrent use.
func TestExpandFresh(t *testing.T) {
	p := mustParse(t, "FROM x\nENV A=$V\nCOPY $V /$V\nRUN --mount=type=cache,target=/$V true\n", Options{})
	before := dump(p)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, s := range p.Stages[0].Steps {
				if _, err := p.Expand(s, []string{"V=" + strings.Repeat("v", g+1)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if after := dump(p); after != before {
		t.Errorf("Expand changed the plan:\n%s\nwant\n%s", after, before)
	}
	env := p.Stages[0].Steps[0].cmd.(*instructions.EnvCommand)
	if env.Env[0].Value != "$V" {
		t.Errorf("Step.Command was expanded in place: %v", env.Env)
	}
}

func TestStageGraph(t *testing.T) {
	src := `FROM alpine AS Base
FROM base AS deps
RUN --mount=type=bind,from=base,target=/b true
FROM golang AS tool
FROM deps AS build
COPY --from=tool /go/bin/x /x
COPY --from=1 /a /a
COPY --from=busybox:1.36 /bin/sh /sh
FROM scratch AS unused
COPY --from=build / /
FROM build
COPY --from=BASE /etc /etc
`
	p := mustParse(t, src, Options{})
	type stage struct {
		name      string
		fromStage int
		deps      []int
		needed    bool
	}
	var got []stage
	for _, st := range p.Stages {
		got = append(got, stage{st.Name, st.FromStage, st.Deps, p.Needed[st.Index]})
	}
	want := []stage{
		{"base", -1, nil, true},
		{"deps", 0, []int{0}, true},
		{"tool", -1, nil, true},
		{"build", 1, []int{1, 2}, true},
		{"unused", -1, []int{3}, false},
		{"", 3, []int{0, 3}, true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stages = %+v\nwant %+v", got, want)
	}
	if p.Target != 5 {
		t.Errorf("Target = %d, want 5", p.Target)
	}
	build := p.Stages[3].Steps
	if build[0].FromStage != 2 || build[1].FromStage != 1 || build[2].FromStage != -1 || build[2].FromImage != "busybox:1.36" {
		t.Errorf("COPY --from resolution: %+v %+v %+v", *build[0], *build[1], *build[2])
	}
	if s := p.Stages[1].Steps[0]; s.FromStage != 0 {
		t.Errorf("RUN --mount from=base: FromStage = %d, want 0", s.FromStage)
	}

	// Targets prune what they do not need.
	for target, needed := range map[string][]bool{
		"tool":  {false, false, true, false, false, false},
		"BUILD": {true, true, true, true, false, false},
		"4":     {true, true, true, true, true, false},
		"0":     {true, false, false, false, false, false},
	} {
		p := mustParse(t, src, Options{Target: target})
		if !reflect.DeepEqual(p.Needed, needed) {
			t.Errorf("target %s: Needed = %v, want %v", target, p.Needed, needed)
		}
	}
}

func TestLookupStage(t *testing.T) {
	p := mustParse(t, "FROM a AS one\nFROM b\nFROM c AS Three\n", Options{})
	for ref, want := range map[string]int{"one": 0, "ONE": 0, "1": 1, "three": 2, "2": 2, "3": -1, "two": -1, "": -1, "-1": -1, "+1": -1} {
		if got, ok := p.LookupStage(ref); got != want || ok != (want >= 0) {
			t.Errorf("LookupStage(%q) = %d, %t; want %d", ref, got, ok, want)
		}
	}
}

func TestCopyFromArgs(t *testing.T) {
	src := `ARG SRC=builder
FROM alpine AS builder
FROM alpine
ARG SRC
ARG IMG=nginx:${TAG:-latest}
COPY --from=${SRC} /a /a
COPY --from=$IMG /b /b
`
	p := mustParse(t, src, Options{})
	steps := p.Stages[1].Steps
	if steps[2].FromStage != 0 {
		t.Errorf("COPY --from=${SRC}: FromStage = %d, want 0", steps[2].FromStage)
	}
	if steps[3].FromImage != "nginx:latest" {
		t.Errorf("COPY --from=$IMG: FromImage = %q", steps[3].FromImage)
	}
}

func TestStepLocations(t *testing.T) {
	src := "# comment\nFROM a\n\nRUN one \\\n  two\n# c\nENV A=1\nRUN <<EOF\nx\nEOF\nUSER u\n"
	p := mustParse(t, src, Options{File: "dir/Recipe"})
	var got []string
	for _, s := range p.Stages[0].Steps {
		got = append(got, s.Loc.String()+" "+s.Text)
	}
	want := []string{"dir/Recipe:4 RUN one   two", "dir/Recipe:7 ENV A=1", "dir/Recipe:8 RUN <<EOF", "dir/Recipe:11 USER u"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("steps = %q\nwant %q", got, want)
	}
	if p.Stages[0].Loc.Line != 2 {
		t.Errorf("stage line = %d, want 2", p.Stages[0].Loc.Line)
	}
}

func TestCheckDirectiveComment(t *testing.T) {
	// A "# check=" comment makes BuildKit consult its linter; it must not
	// crash without one.
	p := mustParse(t, "# check=skip=all\nFROM a\n# check=error=true\nRUN x\n", Options{})
	if len(p.Stages[0].Steps) != 1 {
		t.Errorf("steps = %d", len(p.Stages[0].Steps))
	}
}

func TestParseTriggers(t *testing.T) {
	steps, err := ParseTriggers([]string{
		"RUN echo $HOME",
		"COPY --from=builder . /app",
		"RUN <<EOF\necho hi\nEOF",
		"ENV A=$B",
	}, "base:alpine")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Text+" | "+describe(s.cmd))
	}
	want := []string{
		`RUN echo $HOME | run shell=true cmd=["echo $HOME"] network=default`,
		`COPY --from=builder . /app | copy from="builder" src=["."] dest="/app" chown="" chmod="" link=false parents=false exclude=[]`,
		`RUN <<EOF | run shell=true cmd=["<<EOF"] network=default file[EOF]="echo hi\n"`,
		`ENV A=$B | env A="$B"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("triggers:\n%q\nwant\n%q", got, want)
	}
	if steps[1].FromStage != -1 || steps[1].FromImage != "builder" {
		t.Errorf("COPY trigger: FromStage=%d FromImage=%q", steps[1].FromStage, steps[1].FromImage)
	}
	p := mustParse(t, "FROM x\n", Options{})
	cmd, err := p.expand(steps[3], []string{"B=b"}, nil)
	if err != nil || describe(cmd) != `env A="b"` {
		t.Errorf("Expand(trigger) = %v, %v", cmd, err)
	}

	for _, tt := range []struct{ trigger, msg string }{
		{"ONBUILD RUN x", "ONBUILD ONBUILD"},
		{"FROM alpine", "FROM isn't allowed"},
		{"MAINTAINER me", "MAINTAINER isn't allowed"},
		{"FOO bar", "unknown instruction: FOO"},
		{"COPY one", "COPY requires"},
		{"", "no instructions"},
		{"RUN a\nRUN b", "want one instruction, got 2"},
		{"RUN <<EOF\nx", "unterminated heredoc"},
		{"RUN \xff", "not text"},
	} {
		_, err := ParseTriggers([]string{"RUN ok", tt.trigger}, "base")
		var pe *Error
		if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "base: ONBUILD trigger 2 ") || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseTriggers(%q) = %v, want %q", tt.trigger, err, tt.msg)
		}
	}
}

func TestErrorUnwrap(t *testing.T) {
	_, err := Parse(errReader{}, Options{File: "R"})
	if err == nil || errors.Unwrap(err) == nil || errors.Unwrap(err).Error() != "disk on fire" {
		t.Errorf("Unwrap(%v) = %v", err, errors.Unwrap(err))
	}
	e := &Error{Loc: Location{File: "F", Line: 3}, Msg: "m"}
	if e.Error() != "F:3: m" {
		t.Errorf("Error() = %q", e.Error())
	}
}

// TestExpandCommand checks that Expand hands out the parser's own types,
// carrying what the recipe said.
func TestExpandCommand(t *testing.T) {
	src := "FROM scratch\n" +
		"RUN --mount=type=cache,id=$ID,target=/c,sharing=locked --network=none <<-EOT sh\n\techo $X\n\tEOT\n" +
		"COPY --chown=1:2 --exclude=*.tmp a $D\n" +
		"ADD --checksum=sha256:00 --unpack=true https://example.com/x.tgz /x/\n" +
		"CMD [\"run\", \"$X\"]\n" +
		"HEALTHCHECK --interval=5s --retries=2 CMD true\n" +
		"ENV K=$ID\n"
	p, err := Parse(strings.NewReader(src), Options{File: "Recipe"})
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"ID=v1", "D=/dest"}
	var got []Command
	for _, s := range p.Stages[0].Steps {
		c, err := p.Expand(s, env)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	yes := true
	want := []Command{
		&Run{
			CommandLine: CommandLine{Args: []string{"<<-EOT sh"}, Shell: true, Heredocs: []Heredoc{{Name: "EOT", Data: "\techo $X\n", Chomp: true}}},
			Mounts:      []*Mount{{Type: MountCache, Target: "/c", CacheID: "v1", CacheSharing: SharingLocked}},
			Network:     "none",
		},
		&Copy{Sources: []string{"a"}, Dest: "/dest", Chown: "1:2", Exclude: []string{"*.tmp"}},
		&Add{Sources: []string{"https://example.com/x.tgz"}, Dest: "/x/", Checksum: "sha256:00", Unpack: &yes},
		&Cmd{CommandLine{Args: []string{"run", "$X"}}},
		&Healthcheck{Test: []string{"CMD-SHELL", "true"}, Interval: 5 * time.Second, Retries: 2},
		&Env{Vars: []KeyValue{{Key: "K", Value: "v1"}}},
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("step %d: Expand = %s, want %s", i+1, cmdJSON(got[i]), cmdJSON(want[i]))
		}
	}
}

func cmdJSON(c Command) string {
	b, _ := json.Marshal(c)
	return fmt.Sprintf("%s %s", c.Name(), b)
}
