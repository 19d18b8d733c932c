package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/copier"
	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/internal/envlist"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/progress"
	"github.com/lading-build/lading/runtime"
	"github.com/lading-build/lading/snapshot"
)

// fsStep runs fn against a writable snapshot on top of the stage's rootfs,
// commits it as name (a temporary name, removed after the build, when "")
// and turns the change into a layer. It returns nil for a step that
// changed nothing.
func (s *stage) fsStep(ctx context.Context, name string, fn func(rootfs string) error) (layer v1.Layer, err error) {
	return s.fsStepAt(ctx, name, "", fn)
}

// fsStepAt is fsStep for a step that writes only at and below the
// absolute path dir ("" when unknown): when dir does not exist yet and
// the snapshotter allows it, fn writes straight into the snapshot's own
// directory instead of through a mount.
func (s *stage) fsStepAt(ctx context.Context, name, dir string, fn func(rootfs string) error) (layer v1.Layer, err error) {
	b := s.b
	sn := b.opts.Snapshots
	key, parent := b.newName("active"), s.res.snap
	mounts, err := sn.Prepare(ctx, key, parent)
	if err != nil {
		return nil, fmt.Errorf("preparing snapshot: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = sn.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	direct := ""
	if dw, ok := sn.(snapshot.DirectWriter); ok && dir != "" {
		root, ok, err := dw.DirectDir(ctx, key, dir)
		if err != nil {
			return nil, fmt.Errorf("preparing snapshot: %w", err)
		}
		if ok {
			direct = root
		}
	}
	s.direct = direct != ""
	if s.direct {
		err = fn(direct)
	} else {
		err = b.withMounted(mounts, fn)
	}
	if err != nil {
		return nil, err
	}
	temporary := name == ""
	if temporary {
		name = b.newName("step")
	}
	// Made durable in the background before a cache record refers to it
	// (record); a temporary snapshot never needs to be.
	commit := sn.Commit
	if lc, ok := sn.(snapshot.LazyCommitter); ok {
		commit = lc.CommitUnsynced
	}
	if err := commit(ctx, name, key); err != nil {
		return nil, fmt.Errorf("committing snapshot: %w", err)
	}
	committed = true
	if temporary {
		b.own(name, parent)
	}
	s.res.snap = name
	return b.layerLater(ctx, name, b.layerNeeded(s), layerSpec{split: dir, reuse: s.reuse}, nil), nil
}

// withMounted shows mounts at a directory for the duration of fn. A single
// bind mount is used in place, without mounting anything.
func (b *build) withMounted(mounts []snapshot.Mount, fn func(dir string) error) (err error) {
	if len(mounts) == 1 && mounts[0].Type == "bind" {
		return fn(mounts[0].Source)
	}
	dir, err := os.MkdirTemp(b.opts.Store.Path("tmp"), "mnt-")
	if err != nil {
		return fmt.Errorf("creating mount point: %w", err)
	}
	defer os.Remove(dir)
	if err := snapshot.MountAll(mounts, dir); err != nil {
		return fmt.Errorf("mounting snapshot: %w", err)
	}
	defer func() {
		if uerr := snapshot.UnmountAll(dir); uerr != nil && err == nil {
			err = fmt.Errorf("unmounting snapshot: %w", uerr)
		}
	}()
	return fn(dir)
}

// layerSpec says how a step's layer is written: the path whose entries
// get a gzip member of their own (a COPY's destination, "" for none),
// and where an earlier layer holds that member, to be copied instead.
type layerSpec struct {
	split string
	reuse *cache.ContentPart
}

// layerOf writes the diff of a committed snapshot as a compressed layer
// into the store; nil when the snapshot changed nothing. It also returns
// where the layer holds spec.split's entries, when it is known.
func (b *build) layerOf(ctx context.Context, name string, spec layerSpec) (v1.Layer, *cache.ContentPart, error) {
	if r := spec.reuse; r != nil && r.SameEpoch(b.opts.Epoch) {
		// Copying a part needs little memory: it runs beside the layer
		// being compressed, if any.
		l, part, err := b.diffLayer(ctx, name, spec.split, r)
		if err == nil && b.opts.PartReused != nil {
			b.opts.PartReused(spec.split)
		}
		if err == nil || ctx.Err() != nil {
			return l, part, err
		}
		// The earlier blob is gone or changed, or the snapshot holds more
		// than the copy: write the layer whole.
	}
	// One layer is compressed at a time: each takes a buffer per CPU.
	b.layers <- struct{}{}
	defer func() { <-b.layers }()
	return b.diffLayer(ctx, name, spec.split, nil)
}

// diffLayer writes the diff of snapshot name, with split's entries in the
// layer's first gzip member, copied from reuse when it is not nil.
func (b *build) diffLayer(ctx context.Context, name, split string, reuse *cache.ContentPart) (v1.Layer, *cache.ContentPart, error) {
	layer, head, err := b.writeLayer(ctx, func(lw *image.LayerWriter) error {
		opts := snapshot.DiffOptions{Epoch: b.opts.Epoch, Split: split, OmitSplit: reuse != nil}
		switch {
		case reuse != nil:
			p := image.Part{Size: reuse.Size, Digest: reuse.Digest, TarSize: reuse.TarSize, TarState: reuse.TarState}
			if err := lw.Splice(ctx, reuse.Blob, p); err != nil {
				return err
			}
		case split != "":
			lw.KeepHead()
			opts.Cut = lw.Cut
		}
		return b.opts.Snapshots.Diff(ctx, name, lw, opts)
	})
	if err != nil || layer == nil || split == "" || head == nil {
		return layer, nil, err
	}
	d, err := layer.Digest()
	if err != nil {
		return nil, nil, err
	}
	return layer, &cache.ContentPart{
		Blob: d.String(), Size: head.Size, Digest: head.Digest, TarSize: head.TarSize, TarState: head.TarState,
		Epoch: b.opts.Epoch,
	}, nil
}

// writeLayer writes the layer tar diff writes into a compressed store
// layer and returns it with its first gzip member (see
// image.LayerWriter.Commit); nil when the tar is empty.
func (b *build) writeLayer(ctx context.Context, diff func(lw *image.LayerWriter) error) (v1.Layer, *image.Part, error) {
	lw, err := image.NewLayerWriter(b.opts.Store)
	if err != nil {
		return nil, nil, err
	}
	defer lw.Close()
	if err := diff(lw); err != nil {
		return nil, nil, fmt.Errorf("writing layer: %w", err)
	}
	// An empty tar is just its two 512-byte end blocks.
	if lw.TarSize() <= 1024 {
		return nil, nil, nil
	}
	return lw.Commit()
}

func (s *stage) workdirPath() string {
	if wd := s.res.cfg.Config.WorkingDir; wd != "" {
		return wd
	}
	return "/"
}

// workdir sets WORKDIR and creates the directory, owned by the stage's
// USER as BuildKit does.
func (s *stage) workdir(ctx context.Context, c *parser.Workdir) (v1.Layer, error) {
	p := c.Path
	if !path.IsAbs(p) {
		p = path.Join(s.workdirPath(), p)
	}
	p = path.Clean(p)
	s.res.cfg.Config.WorkingDir = p
	user := s.res.cfg.Config.User
	kb := s.newKey("WORKDIR").Add(cache.FieldInstruction, "WORKDIR "+p).Add("user", user)
	return s.cached(ctx, kb, func(name string) (v1.Layer, error) {
		return s.fsStep(ctx, name, func(root string) error {
			return mkdirInRoot(root, p, user)
		})
	})
}

// mkdirInRoot creates dir (absolute, inside root) and its missing parents,
// resolving symlinks inside root; directories it creates belong to user.
func mkdirInRoot(root, dir, user string) error {
	uid, gid := -1, -1
	if user != "" {
		var err error
		if uid, gid, err = copier.LookupOwner(root, user); err != nil {
			return err
		}
	}
	var created []string
	cur := "/"
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		cur = path.Join(cur, part)
		full, err := securejoin.SecureJoin(root, cur)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(full)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", cur)
			}
			continue
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.Mkdir(full, 0o755); err != nil {
			return err
		}
		created = append(created, full)
	}
	if uid >= 0 {
		for _, d := range created {
			if err := os.Lchown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *stage) copy(ctx context.Context, step *parser.Step, c *parser.Copy) (v1.Layer, error) {
	req := s.copyRequest(c)
	if len(c.Heredocs) > 0 {
		if c.From != "" {
			return nil, errCopyFromHeredoc
		}
		return s.copyHeredoc(ctx, "COPY", req, c.Heredocs)
	}
	if c.From == "" {
		return s.copyInto(ctx, "COPY", req)
	}
	req.Ignore = nil
	req.KeepOwner = true
	return s.copyFrom(ctx, step, req)
}

var errCopyFromHeredoc = errors.New("COPY --from cannot copy heredocs")

// copyRequest is the copier request of a COPY, before its sources are
// chosen.
func (s *stage) copyRequest(c *parser.Copy) copier.Request {
	return copier.Request{
		Sources: c.Sources,
		Dest:    c.Dest,
		Workdir: s.workdirPath(),
		Chown:   c.Chown,
		Chmod:   c.Chmod,
		Epoch:   s.b.opts.Epoch,
		Ignore:  s.b.ignoreMatcher(),
		SrcRoot: s.b.opts.ContextDir,
		Exclude: c.Exclude,
		Parents: c.Parents,
	}
}

func (s *stage) add(ctx context.Context, _ *parser.Step, c *parser.Add) (v1.Layer, error) {
	req := s.addRequest(c)
	if len(c.Heredocs) > 0 {
		return s.copyHeredoc(ctx, "ADD", req, c.Heredocs)
	}
	return s.copyInto(ctx, "ADD", req)
}

// addRequest is the copier request of an ADD.
func (s *stage) addRequest(c *parser.Add) copier.Request {
	return copier.Request{
		Exclude:    c.Exclude,
		Unpack:     c.Unpack,
		KeepGitDir: c.KeepGitDir,
		SrcRoot:    s.b.opts.ContextDir,
		Sources:    c.Sources,
		Dest:       c.Dest,
		Workdir:    s.workdirPath(),
		Ignore:     s.b.ignoreMatcher(),
		Chown:      c.Chown,
		Chmod:      c.Chmod,
		Add:        true,
		Checksum:   c.Checksum,
		Epoch:      s.b.opts.Epoch,
		// Only the user can let sources reach the host's own services.
		HostNetwork: s.b.opts.allowed(AllowNetworkHost),
	}
}

// copyHeredoc runs a COPY/ADD whose sources include heredocs (and maybe
// context files): the heredocs become files of a scratch directory that
// is copied like a context.
func (s *stage) copyHeredoc(ctx context.Context, kind string, req copier.Request, contents []parser.Heredoc) (v1.Layer, error) {
	var kb *cache.KeyBuilder
	if len(req.Sources) > 0 {
		kb2, digests, err := s.copyKey(ctx, kind, &req)
		if err != nil {
			return nil, err
		}
		kb, req.Verify = kb2, verifyCopy(digests)
		s.copyKeyed()
	} else if s.b.cacheFor(s) != nil {
		kb = s.newKey(kind).Add(cache.FieldInstruction, copyText(kind, req))
	}
	if kb != nil {
		for _, c := range contents {
			kb.Add("heredoc", c.Name+"\x00"+c.Data)
		}
	}
	return s.cached(ctx, kb, func(name string) (v1.Layer, error) {
		return s.fsStep(ctx, name, func(root string) error {
			if len(req.Sources) > 0 {
				r := req
				r.DestRoot = root
				if err := copier.Copy(ctx, r); err != nil {
					return err
				}
			}
			dir, names, err := writeHeredocFiles(s.b.opts.Store.Path("tmp"), contents, s.b.opts.Epoch)
			if err != nil {
				return fmt.Errorf("writing heredoc: %w", err)
			}
			defer os.RemoveAll(dir)
			r := req
			r.SrcRoot, r.Sources, r.Ignore, r.Add, r.DestRoot, r.Verify = dir, names, nil, false, root, nil
			return copier.Copy(ctx, r)
		})
	})
}

// copyInto runs a COPY or ADD from the build context, keyed by the
// digests of the files it selects.
func (s *stage) copyInto(ctx context.Context, kind string, req copier.Request) (v1.Layer, error) {
	kb, digests, err := s.copyKey(ctx, kind, &req)
	if err != nil {
		return nil, err
	}
	content := s.contentKey(kind, req, digests)
	req.Verify = verifyCopy(digests)
	s.copyKeyed()
	return s.cached(ctx, kb, func(name string) (v1.Layer, error) {
		return s.copyStep(ctx, name, req, content)
	})
}

// copyKeyed calls the CopyKeyed test hook, if any.
func (s *stage) copyKeyed() {
	if h := s.b.opts.CopyKeyed; h != nil {
		h()
	}
}

// verifyCopy returns the copier.Request.Verify of a COPY keyed by
// digests: it fails the copy of a regular file whose content (hashed as
// it is copied), mode or owner is not what the key was computed from,
// so a file changed during the build is never recorded under the key of
// its old content. nil without digests (no cache).
func verifyCopy(digests []cache.FileDigest) func(copier.Source, []byte) error {
	if digests == nil {
		return nil
	}
	want := make(map[string]string, len(digests))
	for _, d := range digests {
		want[d.Path] = d.Digest
	}
	return func(src copier.Source, sum []byte) error {
		got, err := cache.RegularDigest(src.Info, sum)
		if err != nil {
			return err
		}
		if w, ok := want[src.Rel]; !ok || w != got {
			return fmt.Errorf("%s changed during the build, after the step's cache key was computed from it; build again", src.Rel)
		}
		return nil
	}
}

// copyStep runs a COPY or ADD. content, when not "", keys its output
// (contentKey): an earlier snapshot with that output lends its files as
// hard links, and the step's own snapshot is recorded under it.
func (s *stage) copyStep(ctx context.Context, name string, req copier.Request, content string) (v1.Layer, error) {
	target := copyTarget(req)
	return s.fsStepAt(ctx, name, target, func(root string) error {
		if !s.direct || content == "" {
			req.DestRoot = root
			return copier.Copy(ctx, req)
		}
		s.content = content
		if linked, err := s.linkEarlier(ctx, content, root, target); linked || err != nil {
			return err
		}
		req.DestRoot = root
		return copier.Copy(ctx, req)
	})
}

// linkEarlier fills root's target from the earlier snapshot recorded
// under content, if it is still there; false when there is none.
func (s *stage) linkEarlier(ctx context.Context, content, root, target string) (bool, error) {
	c, dw := s.b.cacheFor(s), s.b.opts.Snapshots.(snapshot.DirectWriter)
	old, part, ok := c.Content(content)
	if !ok {
		return false, nil
	}
	dir, err := dw.CommittedDir(ctx, old)
	if err != nil {
		return false, nil
	}
	src := filepath.Join(dir, target)
	if _, err := os.Lstat(src); err != nil {
		return false, nil
	}
	if err := snapshot.LinkTree(ctx, src, filepath.Join(root, target)); err != nil {
		return true, fmt.Errorf("linking the files of an earlier copy: %w", err)
	}
	s.reuse = part
	return true, nil
}

// copyTarget is the path a plain COPY writes at and below: its
// destination, for one source without wildcards, copied with the owner
// it has (no --chown, which reads the destination's /etc/passwd) and
// without ADD's downloads, archives or --parents; "" for anything else.
func copyTarget(req copier.Request) string {
	if req.Add || req.Parents || req.Chown != "" || len(req.Sources) != 1 || strings.ContainsAny(req.Sources[0], "*?[\\") {
		return ""
	}
	dest := req.Dest
	if !path.IsAbs(dest) {
		wd := req.Workdir
		if wd == "" {
			wd = "/"
		}
		dest = path.Join("/", wd, dest)
	}
	return path.Clean(dest)
}

// copyFrom runs a COPY --from: the source is another stage's rootfs or an
// image's, shown read-only.
func (s *stage) copyFrom(ctx context.Context, step *parser.Step, req copier.Request) (v1.Layer, error) {
	b := s.b
	var srcSnap, fromKey string
	switch {
	case step.FromStage >= 0:
		r, err := b.stage(ctx, step.FromStage)
		if err != nil {
			return nil, err
		}
		srcSnap, fromKey = r.snap, stageIdent(r)
	default:
		ref := step.FromImage
		if v, isImage, ok := b.namedContext(ref); ok {
			if !isImage {
				dir, err := contextDir(ref, v)
				if err != nil {
					return nil, err
				}
				req.SrcRoot, req.KeepOwner = dir, false
				return s.copyInto(ctx, "COPY", req)
			}
			ref = v
		}
		img, err := b.resolveImage(ctx, ref, b.platformOf(s.st))
		if err != nil {
			return nil, err
		}
		dgst, err := img.Digest()
		if err != nil {
			return nil, err
		}
		layers, err := img.Layers()
		if err != nil {
			return nil, err
		}
		if srcSnap, err = b.unpack(ctx, layers); err != nil {
			return nil, err
		}
		fromKey = "image:" + dgst.String()
	}
	kb := s.newKey("COPY").Add(cache.FieldInstruction, copyText("COPY", req)).Add("from", fromKey)
	return s.cached(ctx, kb, func(name string) (v1.Layer, error) {
		sn := b.opts.Snapshots
		key := b.newName("view")
		mounts, err := sn.View(ctx, key, srcSnap)
		if err != nil {
			return nil, fmt.Errorf("preparing source view: %w", err)
		}
		defer sn.Remove(context.WithoutCancel(ctx), key)
		var layer v1.Layer
		err = b.withMounted(mounts, func(src string) error {
			req.SrcRoot = src
			var err error
			layer, err = s.copyStep(ctx, name, req, "")
			return err
		})
		return layer, err
	})
}

// runArgs returns the argv of a RUN step and, for heredocs, the script
// its first argument runs.
func (s *stage) runArgs(c *parser.Run) (args []string, script string, err error) {
	args = c.Args
	if c.Shell {
		args = append(append([]string{}, s.shell...), strings.Join(c.Args, " "))
	}
	if len(c.Heredocs) > 0 {
		if args, script, err = heredocArgs(s.shell, c.CommandLine); err != nil {
			return nil, "", err
		}
	}
	if len(args) == 0 {
		return nil, "", errors.New("RUN needs a command")
	}
	return args, script, nil
}

// run executes a RUN step in a container on the step's snapshot.
func (s *stage) run(ctx context.Context, step *parser.Step, c *parser.Run, id int) (v1.Layer, error) {
	network, err := runNetwork(step, c.Network, s.b.opts)
	if err != nil {
		return nil, err
	}
	args, script, err := s.runArgs(c)
	if err != nil {
		return nil, err
	}
	mounts, err := s.planMounts(ctx, c)
	if err != nil {
		return nil, err
	}
	spec := runtime.Spec{
		Args:     args,
		Cwd:      s.workdirPath(),
		User:     s.res.cfg.Config.User,
		Hostname: s.b.opts.Hostname,
		Network:  network,
		Limits:   s.b.opts.Limits,
		Seccomp:  s.b.opts.Seccomp,
	}
	kb := s.newKey("RUN").
		Add(cache.FieldInstruction, historyText(step)).
		Add("shell", strings.Join(s.shell, "\x00")).
		Add(cache.FieldArg, strings.Join(s.argList(), "\x00")).
		Add(cache.FieldEnv, strings.Join(s.res.cfg.Config.Env, "\x00")).
		Add("workdir", spec.Cwd).
		Add("user", spec.User).
		Add("hostname", spec.Hostname).
		Add("network", network)
	if spec.Seccomp != "" {
		// A step that ran with more syscalls is not the default's.
		kb.Add("seccomp", spec.Seccomp)
	}
	for _, f := range c.Heredocs {
		kb.Add("heredoc", f.Name+"\x00"+f.Data)
	}
	kb.Add("mounts", joinKey(mounts.key))
	layer, err := s.cached(ctx, kb, func(name string) (v1.Layer, error) {
		release, err := s.b.runSlot(ctx)
		if err != nil {
			return nil, err
		}
		// Held until the step is reported done, so that the events
		// never show more RUN steps at once than there are slots.
		s.release = release
		s.begin()
		// Only a step that runs prepares its mounts and script.
		if err := mounts.setup(); err != nil {
			return nil, err
		}
		defer mounts.cleanup()
		spec.Mounts = mounts.mounts
		if script != "" {
			file, cleanup, err := s.b.scriptFile(script)
			if err != nil {
				return nil, err
			}
			defer cleanup()
			spec.Mounts = append([]runtime.Mount{{Type: runtime.MountBind, Source: file, Target: args[0], Readonly: true}}, spec.Mounts...)
		}
		if network == runtime.NetworkDefault {
			ns, err := s.b.netns(ctx)
			if err != nil {
				return nil, err
			}
			spec.Netns = ns
		}
		spec.Env = envlist.Merge(append(append(s.b.proxyEnv(), s.runEnv()...), mounts.env...))
		spec.Stdout = s.b.rep.Output(id)
		spec.Stderr = spec.Stdout
		if err := checkEmulation(s.rootfsPlatform()); err != nil {
			return nil, err
		}
		return s.fsStep(ctx, name, func(root string) error {
			spec.Rootfs = root
			return runtime.Run(ctx, spec)
		})
	})
	if err != nil {
		var exit *runtime.ExitError
		if errors.As(err, &exit) {
			return nil, &StepError{
				Loc:  step.Loc,
				Msg:  "RUN " + oneLine(strings.Join(c.Args, " ")) + ": " + exit.Error(),
				Tail: progress.Tail(s.b.rep, id),
				Err:  err,
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return layer, nil
}
