package builder

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/internal/envlist"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/progress"
)

// defaultPath is the PATH Docker gives images that set none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// stageResult is the state of a stage: its image so far and the snapshot
// holding its root filesystem.
type stageResult struct {
	cfg     *v1.ConfigFile
	extra   image.Extra // config fields cfg's type lacks
	layers  []v1.Layer
	history []v1.History
	snap    string    // committed snapshot of the rootfs; "" = empty
	key     string    // cache key of the rootfs; "" = the base itself
	base    string    // what the stage started from: "scratch" or an image digest
	stamp   time.Time // when the rootfs's latest step ran
	// chain lists the cache keys of the steps that made the rootfs, for
	// --cache-to.
	chain []string
	// args are the ARGs in scope at the end of the stage, which a stage
	// built FROM it inherits (as BuildKit does since v0.15).
	args []arg
	// start is the stage's starting point: its base's snapshot and how
	// many layers and history entries came from the base.
	start struct {
		snap            string
		layers, history int
	}
}

// clone returns a deep enough copy for a child stage to change freely.
func (r *stageResult) clone() *stageResult {
	c := *r
	c.cfg = r.cfg.DeepCopy()
	c.layers = append([]v1.Layer(nil), r.layers...)
	c.history = append([]v1.History(nil), r.history...)
	c.chain = append([]string(nil), r.chain...)
	c.args = append([]arg(nil), r.args...)
	return &c
}

// stage runs the steps of one parser.Stage.
type stage struct {
	b   *build
	st  *parser.Stage
	res *stageResult
	// args are the ARGs declared in this stage, in order; a nil value is
	// declared but unset.
	args     []arg
	shell    []string
	cmdSet   bool // CMD set in this stage (else ENTRYPOINT resets it)
	stepNum  int
	numSteps int

	key       string             // cache key of the rootfs so far
	stamp     time.Time          // when the rootfs's latest step ran (zero: never)
	current   string             // text of the running step
	begin     func()             // reports the running step's start (once)
	release   func()             // gives back the running step's --jobs slot, if it holds one
	direct    bool               // the running step writes into its snapshot directly
	content   string             // content key of the running COPY's output (contentKey)
	reuse     *cache.ContentPart // where an earlier layer holds the running COPY's files
	explained bool               // a cache miss of this stage was explained
	shared    bool               // built once for every target platform
	hitNow    bool               // the running step was a cache hit
}

type arg struct {
	key string
	val *string
}

func (b *build) runStage(ctx context.Context, st *parser.Stage) (*stageResult, error) {
	s := &stage{b: b, st: st, numSteps: len(st.Steps) + 1, shared: b.shared[st.Index]}
	if st.FromStage >= 0 {
		// Shown as started once its input is there.
		if _, err := b.stage(ctx, st.FromStage); err != nil {
			return nil, err
		}
	}
	id := s.start("FROM " + st.From)
	res, triggers, err := b.base(ctx, st)
	if err != nil {
		err = &StepError{Loc: st.Loc, Msg: fmt.Sprintf("FROM %s: %v", st.From, err), Err: err}
		b.rep.Done(id, false, err)
		return nil, err
	}
	b.rep.Done(id, false, nil)
	s.res = res
	s.args = res.args
	s.key, s.stamp = res.key, res.stamp
	res.start.snap, res.start.layers, res.start.history = res.snap, len(res.layers), len(res.history)
	s.shell = res.cfg.Config.Shell
	if len(s.shell) == 0 {
		s.shell = []string{"/bin/sh", "-c"}
	}
	steps := st.Steps
	if len(triggers) > 0 {
		trig, err := parser.ParseTriggers(triggers, b.plan.File)
		if err != nil {
			return nil, &StepError{Loc: st.Loc, Msg: fmt.Sprintf("ONBUILD trigger of %s: %v", st.From, err), Err: err}
		}
		for _, t := range trig {
			t.Loc = st.Loc
			// A trigger's COPY --from may name an earlier stage of this
			// recipe (testOnBuildInheritedStageWithFrom).
			if i, ok := b.plan.LookupStage(t.FromImage); ok && t.FromImage != "" && i < st.Index {
				t.FromStage, t.FromImage = i, ""
			}
		}
		steps = append(trig, steps...)
		s.numSteps += len(trig)
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.runStep(ctx, step); err != nil {
			return nil, err
		}
	}
	s.res.key, s.res.stamp, s.res.args = s.key, s.stamp, s.args
	return s.res, nil
}

// name is the stage's name in progress, after its target platform when
// several are built (a stage shared by all targets has none).
func (s *stage) name() string {
	n := s.st.Name
	if n == "" {
		n = fmt.Sprintf("stage-%d", s.st.Index)
	}
	if s.b.label != "" && !s.shared {
		n = s.b.label + " " + n
	}
	return n
}

// rootfsPlatform is the platform of the binaries in the stage's rootfs:
// its image config's, else the stage's.
func (s *stage) rootfsPlatform() v1.Platform {
	if c := s.res.cfg; c.Architecture != "" {
		return v1.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}
	}
	return s.b.platformOf(s.st)
}

// start reports the stage's next step and returns its progress id.
func (s *stage) start(text string) int {
	id, begin := s.next(text)
	begin()
	return id
}

// next numbers the stage's next step and returns its progress id and a
// function reporting its start, which does so once however often it is
// called. A RUN step reports its start when it holds a --jobs slot (or
// hits the cache), so the events show the RUN steps that execute at once.
func (s *stage) next(text string) (int, func()) {
	s.stepNum++
	id := s.b.newStepID()
	ev := progress.Step{ID: id, Stage: s.name(), Index: s.stepNum, Total: s.numSteps, Text: oneLine(text)}
	var once sync.Once
	return id, func() { once.Do(func() { s.b.rep.Start(ev) }) }
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

func (s *stage) runStep(ctx context.Context, step *parser.Step) (err error) {
	if step.FromStage >= 0 {
		// A step that reads another stage is shown as started once that
		// stage is built.
		if _, err := s.b.stage(ctx, step.FromStage); err != nil {
			return err
		}
	}
	id, begin := s.next(step.Text)
	if _, isRun := step.RunNetwork(); !isRun {
		begin()
	}
	s.current, s.hitNow, s.begin, s.content, s.reuse = historyText(step), false, begin, "", nil
	defer func() {
		begin()
		s.b.rep.Done(id, s.hitNow && err == nil, err)
		if s.release != nil {
			s.release()
			s.release = nil
		}
	}()
	cmd, err := s.b.plan.Expand(step, s.expandEnv())
	if err != nil {
		return stepErr(step, err)
	}
	layer, err := s.dispatch(ctx, step, cmd, id)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return stepErr(step, err)
	}
	s.addHistory(step, layer)
	return nil
}

// stepErr puts the step's location on an error, unless it has one.
func stepErr(step *parser.Step, err error) error {
	switch e := err.(type) {
	case *StepError:
		return e
	case *parser.Error:
		return &StepError{Loc: e.Loc, Msg: e.Msg, Err: e}
	}
	return &StepError{Loc: step.Loc, Msg: firstWord(step.Text) + ": " + err.Error(), Err: err}
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return s
	}
	return strings.ToUpper(f[0])
}

// dispatch applies one expanded command; it returns the layer the step
// committed, or nil for a step that changed only the config or nothing.
func (s *stage) dispatch(ctx context.Context, step *parser.Step, cmd parser.Command, id int) (v1.Layer, error) {
	switch c := cmd.(type) {
	case *parser.Run:
		return s.run(ctx, step, c, id)
	case *parser.Copy:
		return s.copy(ctx, step, c)
	case *parser.Add:
		return s.add(ctx, step, c)
	case *parser.Workdir:
		return s.workdir(ctx, c)
	case *parser.Arg:
		s.declareArgs(c)
		return nil, nil
	default:
		return nil, s.meta(cmd)
	}
}

// addHistory records the step in the image history: every step gets an
// entry, steps without a layer are marked empty.
func (s *stage) addHistory(step *parser.Step, layer v1.Layer) {
	h := v1.History{
		Created:    v1.Time{Time: s.historyTime()},
		CreatedBy:  historyText(step),
		Comment:    "lading",
		EmptyLayer: layer == nil,
	}
	if p, ok := layer.(*pendingLayer); ok {
		p.hist = len(s.res.history)
	}
	if layer != nil {
		s.res.layers = append(s.res.layers, layer)
	}
	s.res.history = append(s.res.history, h)
}

// historyTime stamps history entries with the time the rootfs's latest
// step ran (taken from the cache for cached steps), so a fully cached
// rebuild reproduces the same image; SOURCE_DATE_EPOCH overrides it.
func (s *stage) historyTime() time.Time {
	if s.b.opts.Epoch != nil || s.stamp.IsZero() {
		return s.b.now()
	}
	return s.stamp.UTC()
}

func historyText(step *parser.Step) string {
	return strings.Join(strings.Fields(step.Text), " ")
}

func (b *build) now() time.Time { return timeOf(b.opts) }

// timeOf is the time stamped on what a build writes: SOURCE_DATE_EPOCH
// when set, else now.
func timeOf(opts Options) time.Time {
	if opts.Epoch != nil {
		return time.Unix(*opts.Epoch, 0).UTC()
	}
	return time.Now().UTC()
}

// expandEnv is the environment recipe words are expanded with: the
// stage's ARGs, overridden by the image's ENV.
func (s *stage) expandEnv() []string {
	env := make([]string, 0, len(s.args)+len(s.res.cfg.Config.Env))
	for _, a := range s.args {
		if a.val != nil {
			env = append(env, a.key+"="+*a.val)
		}
	}
	return append(env, s.res.cfg.Config.Env...)
}

// runEnv is the environment of RUN steps: the same as expandEnv, with
// duplicates removed (later wins).
func (s *stage) runEnv() []string {
	return envlist.Merge(s.expandEnv())
}

func (s *stage) declareArgs(c *parser.Arg) {
	for _, kv := range c.Args {
		var val *string
		if v, ok := s.b.plan.BuildArgs[kv.Key]; ok {
			val = &v
		} else if kv.Value != nil {
			v := *kv.Value
			val = &v
		} else if g, ok := s.b.plan.GlobalArgs[kv.Key]; ok {
			val = &g
		}
		replaced := false
		for i := range s.args {
			if s.args[i].key == kv.Key {
				s.args[i].val, replaced = val, true
			}
		}
		if !replaced {
			s.args = append(s.args, arg{key: kv.Key, val: val})
		}
	}
}

// proxyNames are the proxy variables a --build-arg of any case passes to
// every RUN step without an ARG, as BuildKit does; they are not part of
// step keys, so a changed proxy reuses the cache.
var proxyNames = []string{"http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"}

// proxyEnv is the RUN environment the proxy build args give, in upper
// and lower case; the stage's own ARGs and ENV come after it and win.
func (b *build) proxyEnv() []string {
	var env []string
	for _, name := range proxyNames {
		for k, v := range b.plan.BuildArgs {
			if strings.EqualFold(k, name) {
				env = append(env, strings.ToUpper(name)+"="+v, name+"="+v)
				break
			}
		}
	}
	return env
}
