package copier

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrNoGit is returned for a Git source when the git command is missing.
var ErrNoGit = errors.New("the git command is needed for Git sources but was not found in PATH")

// scpURL matches the scp-like form of an ssh remote, "user@host:path".
var scpURL = regexp.MustCompile(`^[A-Za-z0-9_.+-]+@[A-Za-z0-9][A-Za-z0-9.-]*:.`)

// IsGitURL reports whether ADD treats s as a Git repository, as BuildKit
// does: a git:// or ssh:// URL, an http(s) URL whose path ends in ".git",
// or an scp-like "user@host:path". A fragment "#ref[:subdir]" may follow.
func IsGitURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return scpURL.MatchString(s)
	}
	switch strings.ToLower(scheme) {
	case "git", "ssh":
		return true
	case "http", "https":
		u, err := url.Parse(s)
		return err == nil && strings.HasSuffix(u.Path, ".git")
	}
	return false
}

// gitSource is a parsed Git source.
type gitSource struct {
	remote string // what git fetches from
	ref    string // branch, tag, full ref name or commit; "" for HEAD
	subdir string // clean slash path inside the checkout; "" for all of it
}

// parseGitURL splits a Git source into remote, ref and subdirectory.
func parseGitURL(s string) (gitSource, error) {
	remote, frag, _ := strings.Cut(s, "#")
	ref, subdir, _ := strings.Cut(frag, ":")
	g := gitSource{remote: remote, ref: ref}
	shown := redact(remote)
	if strings.HasPrefix(remote, "-") {
		return g, fmt.Errorf("git source %s: invalid remote", shown)
	}
	if strings.Contains(remote, "://") {
		u, err := url.Parse(remote)
		if err != nil {
			return g, fmt.Errorf("git source %s: %w", shown, err)
		}
		if u.RawQuery != "" {
			return g, fmt.Errorf("git source %s: query options are not supported; write #ref:subdir", shown)
		}
	}
	if err := checkRef(ref); err != nil {
		return g, fmt.Errorf("git source %s: %w", shown, err)
	}
	for _, c := range strings.Split(subdir, "/") {
		if c == ".." {
			return g, fmt.Errorf("git source %s: subdirectory %q must not contain \"..\"", shown, subdir)
		}
	}
	g.subdir = strings.Trim(path.Clean("/"+subdir), "/")
	return g, nil
}

// checkRef rejects refs git would read as options or revision syntax.
func checkRef(ref string) error {
	if strings.HasPrefix(ref, "-") || strings.Contains(ref, "..") || strings.ContainsAny(ref, " ~^:?*[\\") {
		return fmt.Errorf("invalid ref %q", ref)
	}
	for _, r := range ref {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("invalid ref %q", ref)
		}
	}
	return nil
}

// commitHex matches a full commit name (SHA-1 or SHA-256).
var commitHex = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// commitPrefix matches a --checksum for a Git source: a commit name or a
// prefix of one.
var commitPrefix = regexp.MustCompile(`^[0-9a-fA-F]{1,64}$`)

// abbrevHex matches what may be an abbreviated commit name.
var abbrevHex = regexp.MustCompile(`^[0-9a-f]{4,64}$`)

// runGit runs git in dir, in an environment that reads no system or
// global configuration, never prompts, runs no hooks and only speaks
// http, https, ssh and git (no file:// or ext:: remotes, even in
// submodules), connecting as n allows. It returns the standard output.
func runGit(ctx context.Context, n *gitNet, dir string, args ...string) ([]byte, error) {
	bin, err := exec.LookPath("git")
	if err != nil {
		return nil, ErrNoGit
	}
	base := []string{
		"-c", "core.hooksPath=/dev/null",
		"-c", "core.fsmonitor=false",
		"-c", "protocol.allow=never",
		"-c", "protocol.http.allow=always",
		"-c", "protocol.https.allow=always",
		"-c", "advice.detachedHead=false",
		"-c", "init.defaultBranch=main",
	}
	base = append(base, n.config()...)
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Dir = dir
	cmd.Env = gitEnv(n.host)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2048 {
			msg = msg[:2048] + "..."
		}
		return nil, n.wrap(fmt.Errorf("git %s: %w: %s", args[0], err, msg))
	}
	return out, nil
}

// gitEnv is git's environment: PATH, the ssh agent and, with host
// networking, proxies from ours (without it, git goes through gitNet's
// proxy and must not bypass it for NO_PROXY hosts).
func gitEnv(hostNetwork bool) []string {
	env := []string{
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_ASKPASS=true",
		"HOME=" + os.TempDir(),
		"LC_ALL=C",
	}
	keep := []string{"PATH", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND"}
	if hostNetwork {
		keep = append(keep, "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
			"http_proxy", "https_proxy", "no_proxy", "all_proxy")
	}
	for _, k := range keep {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// GitCommit resolves ref in the Git repository rawURL (a source as
// IsGitURL accepts it) to the hex name of a commit, with git ls-remote;
// an empty ref means the ref of rawURL's fragment, else HEAD. A full
// commit name is returned as is; an abbreviated one cannot be resolved
// without a clone and is an error. hostNetwork is Request.HostNetwork.
func GitCommit(ctx context.Context, rawURL, ref string, hostNetwork bool) (string, error) {
	g, err := parseGitURL(rawURL)
	if err != nil {
		return "", err
	}
	if ref != "" {
		if err := checkRef(ref); err != nil {
			return "", err
		}
		g.ref = ref
	}
	n, err := startGitNet(hostNetwork)
	if err != nil {
		return "", err
	}
	defer n.close()
	_, sha, err := lsRemote(ctx, n, g)
	if err != nil {
		return "", err
	}
	if sha == "" {
		return "", fmt.Errorf("resolving %s in %s: no such ref, and an abbreviated commit needs a clone", g.ref, redact(g.remote))
	}
	return sha, nil
}

// lsRemote resolves g.ref with git ls-remote to a full ref name and the
// commit it points to (annotated tags peeled). A branch wins over a tag
// of the same name, as in BuildKit. A full commit name gives ("", it); an
// abbreviated one that names no ref gives ("", "").
func lsRemote(ctx context.Context, n *gitNet, g gitSource) (name, sha string, err error) {
	ref := g.ref
	if ref == "" {
		ref = "HEAD"
	}
	if commitHex.MatchString(ref) {
		return "", ref, nil
	}
	if err := n.check(ctx, g.remote); err != nil {
		return "", "", fmt.Errorf("listing refs of %s: %w", redact(g.remote), err)
	}
	out, err := runGit(ctx, n, os.TempDir(), "ls-remote", "--", g.remote, ref, ref+"^{}")
	if err != nil {
		return "", "", fmt.Errorf("listing refs of %s: %w", redact(g.remote), err)
	}
	refs := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if sum, n, ok := strings.Cut(sc.Text(), "\t"); ok {
			refs[n] = sum
		}
	}
	cands := []string{ref}
	if ref != "HEAD" && !strings.HasPrefix(ref, "refs/") {
		cands = []string{"refs/heads/" + ref, "refs/tags/" + ref}
	}
	for _, c := range cands {
		if sum, ok := refs[c+"^{}"]; ok {
			return c, sum, nil
		}
		if sum, ok := refs[c]; ok {
			return c, sum, nil
		}
	}
	if abbrevHex.MatchString(ref) {
		return "", "", nil
	}
	return "", "", fmt.Errorf("ref %s not found in %s", ref, redact(g.remote))
}

// clone checks g out into the empty directory dir, with submodules, and
// returns the commit and its commit time.
func clone(ctx context.Context, n *gitNet, g gitSource, dir string) (sha string, ctime int64, err error) {
	shown := redact(g.remote)
	git := func(args ...string) ([]byte, error) { return runGit(ctx, n, dir, args...) }
	if _, err := git("init", "-q"); err != nil {
		return "", 0, err
	}
	if _, err := git("remote", "add", "origin", g.remote); err != nil {
		return "", 0, err
	}
	name, sha, err := lsRemote(ctx, n, g)
	if err != nil {
		return "", 0, err
	}
	fetched := false
	for _, want := range []string{sha, name} {
		if want == "" {
			continue
		}
		if _, err := git("fetch", "-q", "--depth=1", "--no-tags", "origin", want); err == nil {
			fetched = true
			break
		}
	}
	if !fetched || sha == "" {
		// A commit the server does not serve directly, or an abbreviated
		// one: fetch everything and look it up.
		_, err := git("fetch", "-q", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
		if err != nil {
			return "", 0, fmt.Errorf("fetching %s: %w", shown, err)
		}
		want := sha
		if want == "" {
			want = g.ref
		}
		out, err := git("rev-parse", "--verify", "-q", want+"^{commit}")
		if err != nil {
			return "", 0, fmt.Errorf("commit %s not found in %s", want, shown)
		}
		sha = strings.TrimSpace(string(out))
	}
	if _, err := git("checkout", "-q", "--detach", sha, "--"); err != nil {
		return "", 0, fmt.Errorf("checking out %s of %s: %w", sha, shown, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, ".gitmodules")); err == nil {
		if _, err := git("submodule", "update", "--init", "--recursive", "--depth=1"); err != nil {
			return "", 0, fmt.Errorf("updating submodules of %s: %w", shown, err)
		}
	}
	out, err := git("log", "-1", "--format=%ct", "HEAD")
	if err != nil {
		return "", 0, err
	}
	ctime, err = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("reading commit time: %w", err)
	}
	return sha, ctime, nil
}

// checkout is a Git checkout being copied: files get the modes Git
// records (0644, or 0755 when executable; directories 0755) before
// --chmod, and every mtime is the commit time (or Request.Epoch).
type checkout struct{ mtime time.Time }

// gitMode is the mode Git gives a checked-out entry.
func gitMode(m uint32, dir bool) uint32 {
	if dir || m&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

// addGit clones the Git source raw and copies the checkout (or its
// subdirectory, resolved inside it) like a directory source: its
// contents go into dest, without .git unless --keep-git-dir.
func (o *op) addGit(ctx context.Context, raw string) error {
	g, err := parseGitURL(raw)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lading-git-")
	if err != nil {
		return fmt.Errorf("cloning %s: %w", redact(g.remote), err)
	}
	defer os.RemoveAll(dir)
	n, err := startGitNet(o.req.HostNetwork)
	if err != nil {
		return err
	}
	defer n.close()
	sha, ctime, err := clone(ctx, n, g, dir)
	if err != nil {
		return err
	}
	if o.commit != "" && !strings.HasPrefix(sha, o.commit) {
		return fmt.Errorf("%s: %w: want commit %s, got %s", redact(raw), ErrChecksum, o.commit, sha)
	}
	s, err := newSelector(Request{SrcRoot: dir, Exclude: o.req.Exclude})
	if err != nil {
		return err
	}
	s.noGit = !o.req.KeepGitDir
	sub := g.subdir
	if sub == "" {
		sub = "."
	}
	srcs, err := s.one(sub, 0, false) // resolved inside the checkout
	if err != nil {
		return fmt.Errorf("%s: %w", redact(raw), err)
	}
	mtime := time.Unix(ctime, 0)
	if o.req.Epoch != nil {
		mtime = time.Unix(*o.req.Epoch, 0)
	}
	o.checkout = &checkout{mtime: mtime}
	defer func() { o.checkout = nil }()
	return o.copyMatch(ctx, srcs)
}
