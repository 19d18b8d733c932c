package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/gofrs/flock"
	"github.com/moby/patternmatcher"

	"github.com/lading-build/lading/cache"
	"github.com/lading-build/lading/copier"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/runtime"
	"github.com/lading-build/lading/snapshot"
)

// lockPoll is how often a blocked cache-mount lock is retried.
const lockPoll = 20 * time.Millisecond

// SSHSource is an ssh agent socket for RUN --mount=type=ssh.
type SSHSource struct {
	Socket string
}

// runMounts is the host side of a RUN step's --mount flags. Planning
// (planMounts) only checks them and computes their cache-key fields, so a
// cache hit costs nothing more; setup, run only when the step runs,
// prepares the runtime mounts and extra environment (secrets as env), and
// cleanup undoes it after the step.
type runMounts struct {
	key      []string
	setups   []func(m *runMounts) error
	mounts   []runtime.Mount
	env      []string
	cleanups []func()
}

// setup prepares every mount; on error, what was prepared is undone.
func (m *runMounts) setup() error {
	for _, fn := range m.setups {
		if err := fn(m); err != nil {
			m.cleanup()
			return err
		}
	}
	return nil
}

func (m *runMounts) cleanup() {
	for i := len(m.cleanups) - 1; i >= 0; i-- {
		m.cleanups[i]()
	}
	m.cleanups = nil
}

// planMounts checks every --mount of a RUN step and computes its key
// fields, without side effects on the host.
func (s *stage) planMounts(ctx context.Context, c *parser.Run) (*runMounts, error) {
	m := &runMounts{}
	var err error
	sshIndex := 0
	for _, mt := range c.Mounts {
		if err := s.b.checkMount(mt); err != nil {
			return nil, err
		}
		switch mt.Type {
		case parser.MountBind:
			err = s.bindMount(ctx, m, mt)
		case parser.MountCache:
			err = s.cacheMount(ctx, m, mt)
		case parser.MountTmpfs:
			mount := runtime.Mount{Type: runtime.MountTmpfs, Target: mt.Target, Size: mt.SizeLimit}
			m.key = append(m.key, fmt.Sprintf("tmpfs %s %d", mt.Target, mt.SizeLimit))
			m.setups = append(m.setups, func(m *runMounts) error {
				m.mounts = append(m.mounts, mount)
				return nil
			})
		case parser.MountSecret:
			err = s.secretMount(m, mt)
		case parser.MountSSH:
			err = s.sshMount(m, mt, sshIndex)
			sshIndex++
		default:
			err = fmt.Errorf("mount type %q is not supported", mt.Type)
		}
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// bindMount mounts a directory or file of the build context, a stage or
// an image. The source path is resolved inside its root, never through a
// symlink out of it (buildah CVE-2024-1753). rw mounts get a throwaway
// writable layer, so writes are discarded. A context source is keyed by
// the content it shows, as COPY would select it.
func (s *stage) bindMount(ctx context.Context, m *runMounts, mt *parser.Mount) error {
	b := s.b
	var root, ident, snap string
	var ignore *patternmatcher.PatternMatcher
	fromDir := false
	switch {
	case mt.From == "":
		root, ident, fromDir, ignore = b.opts.ContextDir, "context", true, b.ignoreMatcher()
	default:
		if v, isImage, ok := b.namedContext(mt.From); ok && !isImage {
			dir, err := contextDir(mt.From, v)
			if err != nil {
				return err
			}
			root, ident, fromDir = dir, "context:"+mt.From, true
			break
		}
		sn, key, err := s.sourceSnapshot(ctx, mt.From)
		if err != nil {
			return err
		}
		snap, ident = sn, key
	}
	source := path.Clean("/" + mt.Source)
	key := fmt.Sprintf("bind %s %s %s ro=%v", ident, source, mt.Target, mt.ReadOnly)
	if fromDir {
		sel, err := copier.Select(copier.Request{SrcRoot: root, Sources: []string{source}, Ignore: ignore})
		if err != nil {
			return fmt.Errorf("mount source %q: %w", mt.Source, err)
		}
		if b.stat != nil {
			digest, err := s.selectionDigest(ctx, sel)
			if err != nil {
				return err
			}
			key += " " + digest
		}
	}
	m.key = append(m.key, key)
	m.setups = append(m.setups, func(m *runMounts) error {
		dir := root
		switch {
		case ignore != nil:
			// The build context as COPY sees it: without what
			// .dockerignore excludes, in a throwaway copy (so rw needs no
			// overlay).
			tmp, cleanup, err := b.filteredContext(ctx, root, source)
			if err != nil {
				return err
			}
			m.cleanups = append(m.cleanups, cleanup)
			dir = tmp
		case !fromDir:
			view, cleanup, err := b.mountView(ctx, snap, !mt.ReadOnly)
			if err != nil {
				return err
			}
			m.cleanups = append(m.cleanups, cleanup)
			dir = view
		case !mt.ReadOnly:
			merged, cleanup, err := b.overlayOnDir(root)
			if err != nil {
				return err
			}
			m.cleanups = append(m.cleanups, cleanup)
			dir = merged
		}
		src, err := securejoin.SecureJoin(dir, source)
		if err != nil {
			return fmt.Errorf("resolving mount source %q: %w", mt.Source, err)
		}
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("mount source %q: %w", mt.Source, err)
		}
		m.mounts = append(m.mounts, runtime.Mount{Type: runtime.MountBind, Source: src, Target: mt.Target, Readonly: mt.ReadOnly})
		return nil
	})
	return nil
}

// filteredContext copies the part of the build context a bind mount
// shows (source, a file or directory), minus .dockerignore'd files, into a
// temporary directory laid out like the context.
func (b *build) filteredContext(ctx context.Context, contextDir, source string) (string, func(), error) {
	tmp, err := os.MkdirTemp(b.opts.Store.Path("tmp"), "bind-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	src := path.Clean("/" + source)
	dest := src
	if fi, err := os.Stat(filepath.Join(contextDir, src)); err == nil && fi.IsDir() {
		dest = src + "/"
	}
	if src == "/" {
		src, dest = ".", "/"
	}
	err = copier.Copy(ctx, copier.Request{
		SrcRoot: contextDir, Sources: []string{src}, Dest: dest, Workdir: "/",
		DestRoot: tmp, Ignore: b.ignoreMatcher(), KeepOwner: true,
	})
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("preparing bind mount of %s: %w", source, err)
	}
	return tmp, cleanup, nil
}

// sourceSnapshot resolves a mount's from= (a stage name or index, or an
// image) to a committed snapshot and an identity for the cache key.
func (s *stage) sourceSnapshot(ctx context.Context, from string) (string, string, error) {
	b := s.b
	if i, ok := b.plan.LookupStage(from); ok {
		r, err := b.stage(ctx, i)
		if err != nil {
			return "", "", err
		}
		return r.snap, stageIdent(r), nil
	}
	ref := from
	if v, isImage, ok := b.namedContext(from); ok && isImage {
		ref = v
	}
	img, err := b.resolveImage(ctx, ref, b.platformOf(s.st))
	if err != nil {
		return "", "", err
	}
	dgst, err := img.Digest()
	if err != nil {
		return "", "", err
	}
	layers, err := img.Layers()
	if err != nil {
		return "", "", err
	}
	snap, err := b.unpack(ctx, layers)
	return snap, "image:" + dgst.String(), err
}

// mountView mounts a committed snapshot on a new directory, writable
// through a throwaway snapshot when rw.
func (b *build) mountView(ctx context.Context, snap string, rw bool) (string, func(), error) {
	sn := b.opts.Snapshots
	key := b.newName("mount")
	var mounts []snapshot.Mount
	var err error
	if rw {
		mounts, err = sn.Prepare(ctx, key, snap)
	} else {
		mounts, err = sn.View(ctx, key, snap)
	}
	if err != nil {
		return "", nil, fmt.Errorf("preparing mount source: %w", err)
	}
	dir, err := os.MkdirTemp(b.opts.Store.Path("tmp"), "mnt-")
	if err != nil {
		sn.Remove(context.WithoutCancel(ctx), key)
		return "", nil, err
	}
	if err := snapshot.MountAll(mounts, dir); err != nil {
		os.Remove(dir)
		sn.Remove(context.WithoutCancel(ctx), key)
		return "", nil, fmt.Errorf("mounting mount source: %w", err)
	}
	return dir, func() {
		_ = snapshot.UnmountAll(dir)
		os.Remove(dir)
		_ = sn.Remove(context.WithoutCancel(ctx), key)
	}, nil
}

// overlayOnDir shows dir through a throwaway overlay, so a rw bind of the
// build context cannot change it.
func (b *build) overlayOnDir(dir string) (string, func(), error) {
	tmp, err := os.MkdirTemp(b.opts.Store.Path("tmp"), "rw-")
	if err != nil {
		return "", nil, err
	}
	upper, work, merged := filepath.Join(tmp, "upper"), filepath.Join(tmp, "work"), filepath.Join(tmp, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			os.RemoveAll(tmp)
			return "", nil, err
		}
	}
	mount := snapshot.Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + dir, "upperdir=" + upper, "workdir=" + work, "index=off", "redirect_dir=off", "metacopy=off",
	}}
	if err := snapshot.MountAll([]snapshot.Mount{mount}, merged); err != nil {
		os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("making a writable view of %s: %w", dir, err)
	}
	return merged, func() {
		_ = snapshot.UnmountAll(merged)
		os.RemoveAll(tmp)
	}, nil
}

// selectionDigest is the content digest of the files a context bind
// mount shows, through the build's stat cache.
func (s *stage) selectionDigest(ctx context.Context, sel []copier.Source) (string, error) {
	files := make([]cache.File, 0, len(sel))
	for _, src := range sel {
		files = append(files, cache.File{Rel: src.Rel, Abs: src.Path, Info: src.Info})
	}
	digests, err := cache.DigestFiles(ctx, s.b.stat, files)
	if err != nil {
		return "", fmt.Errorf("hashing mount source: %w", err)
	}
	return cache.NewKey("").AddFiles("files", digests).Sum(), nil
}

// cacheMount mounts a persistent cache directory under --root. Its id is
// hashed into the directory name, so no id can reach outside; sharing
// "locked" holds an exclusive lock for the step, "private" uses an
// instance no other step holds. Cache mounts are not part of step keys.
// With from= (a stage or image), the cache is a separate one per source
// content, as in BuildKit, and starts as a copy of that source's
// source= directory.
func (s *stage) cacheMount(ctx context.Context, m *runMounts, mt *parser.Mount) error {
	id := mt.CacheID
	if id == "" {
		id = mt.Target
	}
	var seed, seedPath string
	if mt.From != "" {
		snap, ident, err := s.sourceSnapshot(ctx, mt.From)
		if err != nil {
			return err
		}
		seed, seedPath = snap, path.Clean("/"+mt.Source)
		id += "\x00" + ident + "\x00" + seedPath
	}
	m.key = append(m.key, fmt.Sprintf("cache %s ro=%v", mt.Target, mt.ReadOnly))
	m.setups = append(m.setups, func(m *runMounts) error {
		base := s.b.opts.Store.CacheMountDir(id)
		if err := os.MkdirAll(base, 0o700); err != nil {
			return err
		}
		if err := recordCacheMountID(base, id); err != nil {
			return fmt.Errorf("creating cache mount: %w", err)
		}
		dir, unlock, err := lockCacheDir(ctx, base, mt.CacheSharing)
		if err != nil {
			return err
		}
		m.cleanups = append(m.cleanups, unlock)
		created, err := initCacheDir(dir, mt)
		if err != nil {
			return err
		}
		if created && seed != "" {
			if err := s.b.seedCacheDir(ctx, dir, seed, seedPath); err != nil {
				return err
			}
		}
		m.mounts = append(m.mounts, runtime.Mount{Type: runtime.MountBind, Source: dir, Target: mt.Target, Readonly: mt.ReadOnly})
		return nil
	})
	return nil
}

// seedCacheDir fills a new cache directory with the directory src of the
// committed snapshot snap, owners and modes kept.
func (b *build) seedCacheDir(ctx context.Context, dir, snap, src string) error {
	view, done, err := b.mountView(ctx, snap, false)
	if err != nil {
		return err
	}
	defer done()
	err = copier.Copy(ctx, copier.Request{SrcRoot: view, Sources: []string{src}, Dest: "/", DestRoot: dir, KeepOwner: true})
	if err != nil {
		return fmt.Errorf("seeding cache mount from %s: %w", src, err)
	}
	return nil
}

// lockCacheDir picks the directory of a cache mount instance and takes
// the lock its sharing mode needs.
func lockCacheDir(ctx context.Context, base string, sharing string) (string, func(), error) {
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", nil, err
	}
	switch sharing {
	case parser.SharingLocked:
		l := flock.New(filepath.Join(base, "lock"))
		if _, err := l.TryLockContext(ctx, lockPoll); err != nil {
			return "", nil, fmt.Errorf("locking cache mount: %w", err)
		}
		return filepath.Join(base, "0"), func() { l.Unlock() }, nil
	case parser.SharingPrivate:
		for i := 0; ; i++ {
			l := flock.New(filepath.Join(base, "lock."+strconv.Itoa(i)))
			ok, err := l.TryLock()
			if err != nil {
				return "", nil, fmt.Errorf("locking cache mount: %w", err)
			}
			if ok {
				return filepath.Join(base, strconv.Itoa(i)), func() { l.Unlock() }, nil
			}
		}
	default: // shared
		return filepath.Join(base, "0"), func() {}, nil
	}
}

// initCacheDir creates a cache mount's directory with its uid, gid and
// mode the first time, and then reports created.
func initCacheDir(dir string, mt *parser.Mount) (created bool, err error) {
	err = os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		// It must be a directory of ours, never a symlink (which the
		// runtime would follow when bind mounting it).
		return false, realDir(dir)
	}
	if err != nil {
		return false, fmt.Errorf("creating cache mount: %w", err)
	}
	return true, setOwnerMode(dir, mt, 0o755)
}

// setOwnerMode gives a cache directory or secret file the uid, gid and
// mode (octal, with setuid, setgid and sticky bits) a mount asks for;
// root and def otherwise.
func setOwnerMode(p string, mt *parser.Mount, def os.FileMode) error {
	mode := def
	if mt.Mode != nil {
		mode = copier.FileMode(uint32(*mt.Mode))
	}
	uid, gid := 0, 0
	if mt.UID != nil {
		uid = int(*mt.UID)
	}
	if mt.GID != nil {
		gid = int(*mt.GID)
	}
	if err := os.Chown(p, uid, gid); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// secretMount gives a step a secret as a file on a tmpfs-backed path (it
// never touches the store) or as an environment variable. Secrets are
// never part of keys, layers, history or logs.
func (s *stage) secretMount(m *runMounts, mt *parser.Mount) error {
	id := secretID(mt)
	value, ok := s.b.opts.Secrets[id]
	if !ok {
		return nil // not required: checkMount saw to that
	}
	if mt.Env != nil {
		name := *mt.Env
		if name == "" {
			name = id
		}
		m.key = append(m.key, "secret-env "+name)
		m.setups = append(m.setups, func(m *runMounts) error {
			m.env = append(m.env, name+"="+string(value))
			return nil
		})
		if mt.Target == "" {
			return nil
		}
	}
	target := mt.Target
	if target == "" {
		target = "/run/secrets/" + id
	}
	m.key = append(m.key, "secret "+target)
	m.setups = append(m.setups, func(m *runMounts) error {
		// A private directory, so no host user can read the file whatever
		// owner and mode the step wants it to have.
		dir, err := os.MkdirTemp(secretDir(), "lading-secret-")
		if err != nil {
			return fmt.Errorf("preparing secret %s: %w", id, err)
		}
		m.cleanups = append(m.cleanups, func() { os.RemoveAll(dir) })
		name := filepath.Join(dir, "secret")
		if err := os.WriteFile(name, value, 0o400); err != nil {
			return fmt.Errorf("preparing secret %s: %w", id, err)
		}
		if err := setOwnerMode(name, mt, 0o400); err != nil {
			return err
		}
		m.mounts = append(m.mounts, runtime.Mount{Type: runtime.MountBind, Source: name, Target: target, Readonly: true})
		return nil
	})
	return nil
}

// secretDir is a memory-backed directory for secret files: the user's
// runtime directory where there is one (rootless, the only place besides
// the store lading writes to), else /dev/shm.
func secretDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// sshMount forwards an ssh agent socket.
func (s *stage) sshMount(m *runMounts, mt *parser.Mount, n int) error {
	id := sshID(mt)
	src, ok := s.b.opts.SSH[id]
	if !ok {
		return nil // not required: checkMount saw to that
	}
	target := mt.Target
	if target == "" {
		target = "/run/buildkit/ssh_agent." + strconv.Itoa(n)
	}
	m.key = append(m.key, "ssh "+id+" "+target)
	m.setups = append(m.setups, func(m *runMounts) error {
		m.mounts = append(m.mounts, runtime.Mount{Type: runtime.MountBind, Source: src.Socket, Target: target})
		m.env = append(m.env, "SSH_AUTH_SOCK="+target)
		return nil
	})
	return nil
}

func joinKey(parts []string) string { return strings.Join(parts, "\x00") }

// checkMount checks what can be known of a RUN --mount before any step
// runs: a target where one is needed, and the secrets and agents a step
// requires.
func (b *build) checkMount(mt *parser.Mount) error {
	switch mt.Type {
	case parser.MountBind, parser.MountCache, parser.MountTmpfs:
		if mt.Target == "" {
			return fmt.Errorf("--mount=type=%s needs a target", mt.Type)
		}
	}
	switch mt.Type {
	case parser.MountSecret:
		if _, ok := b.opts.Secrets[secretID(mt)]; mt.Required && !ok {
			id := secretID(mt)
			return fmt.Errorf("secret %q is required but was not given (--secret id=%s,src=FILE)", id, id)
		}
	case parser.MountSSH:
		if _, ok := b.opts.SSH[sshID(mt)]; mt.Required && !ok {
			return fmt.Errorf("ssh agent %q is required but was not given (--ssh %s)", sshID(mt), sshID(mt))
		}
	}
	return nil
}

// secretID is the id of a secret mount: id=, else the target's base
// name, else env=.
func secretID(mt *parser.Mount) string {
	id := mt.CacheID
	if id == "" && mt.Target != "" {
		id = path.Base(mt.Target)
	}
	if id == "" && mt.Env != nil {
		id = *mt.Env
	}
	return id
}

// sshID is the id of an ssh mount, "default" when none is given.
func sshID(mt *parser.Mount) string {
	if mt.CacheID == "" {
		return "default"
	}
	return mt.CacheID
}
