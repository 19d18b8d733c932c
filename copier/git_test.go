package copier

import (
	"context"
	"errors"
	"io/fs"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// gitRepo is a repository served over HTTP on 127.0.0.1 by git
// http-backend, with the commits made for the tests.
type gitRepo struct {
	url           string // of repo.git
	v1, v2, feat  string // commits: tag v1, main, branch feature
	t1, t2        int64  // commit times of v1 and v2
	base, workdir string
}

// gitT runs git for a test fixture, with a fixed identity and date.
func gitT(t *testing.T, dir string, date int64, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	d := strconv.FormatInt(date, 10) + " +0000"
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_AUTHOR_DATE="+d, "GIT_COMMITTER_DATE="+d)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newGitRepo builds the fixture: on main, commit v1 (tagged, annotated)
// with hello.txt, then v2 with a subdirectory, an executable, a symlink
// to / in links/, a symlink to /etc and a submodule vendor/lib; branch
// feature adds a commit on top of v1.
func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	backend, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skip("git --exec-path:", err)
	}
	backendPath := filepath.Join(strings.TrimSpace(string(backend)), "git-http-backend")
	if _, err := os.Stat(backendPath); err != nil {
		t.Skip("no git-http-backend:", err)
	}
	r := &gitRepo{base: t.TempDir(), workdir: t.TempDir(), t1: 1600000000, t2: 1700000000}
	lib := t.TempDir()
	gitT(t, lib, r.t1, "init", "-q")
	build(t, lib, "f lib.txt lib")
	gitT(t, lib, r.t1, "add", ".")
	gitT(t, lib, r.t1, "commit", "-q", "-m", "lib")
	gitT(t, r.base, r.t1, "clone", "-q", "--bare", lib, "lib.git")

	w := r.workdir
	gitT(t, w, r.t1, "init", "-q")
	build(t, w, "f hello.txt v1")
	gitT(t, w, r.t1, "add", ".")
	gitT(t, w, r.t1, "commit", "-q", "-m", "v1")
	gitT(t, w, r.t1, "tag", "-a", "-m", "version 1", "v1")
	r.v1 = gitT(t, w, r.t1, "rev-parse", "HEAD")
	gitT(t, w, r.t1, "checkout", "-q", "-b", "feature")
	build(t, w, "f hello.txt feature")
	gitT(t, w, r.t1+5, "commit", "-q", "-am", "feature")
	r.feat = gitT(t, w, r.t1, "rev-parse", "HEAD")
	gitT(t, w, r.t1, "checkout", "-q", "main")
	build(t, w, "f hello.txt v2", "f sub/data.txt data", "f sub/run.sh #!/bin/sh | mode=0700", "l links/root /", "l etclink /etc")
	gitT(t, w, r.t2, "submodule", "-q", "add", filepath.Join(r.base, "lib.git"), "vendor/lib")
	gitT(t, w, r.t2, "config", "-f", ".gitmodules", "submodule.vendor/lib.url", "../lib.git")
	gitT(t, w, r.t2, "add", ".")
	gitT(t, w, r.t2, "commit", "-q", "-m", "v2")
	r.v2 = gitT(t, w, r.t2, "rev-parse", "HEAD")
	gitT(t, r.base, r.t2, "clone", "-q", "--bare", w, "repo.git")
	gitT(t, filepath.Join(r.base, "repo.git"), r.t2, "fetch", "-q", w, "feature:feature")

	srv := httptest.NewServer(&cgi.Handler{
		Path: backendPath,
		Env:  []string{"GIT_PROJECT_ROOT=" + r.base, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull},
	})
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/repo.git"
	return r
}

func TestAddGit(t *testing.T) {
	r := newGitRepo(t)
	epoch := int64(1234567890)
	main := []string{
		"app d 0755 0:0", `app/hello.txt f 0644 0:0 "v2"`, `app/.gitmodules f 0644 0:0 "[submodule \"vendor/lib\"]\n\tpath = vendor/lib\n\turl = ../lib.git\n"`,
		"app/sub d 0755 0:0", `app/sub/data.txt f 0644 0:0 "data"`, `app/sub/run.sh f 0755 0:0 "#!/bin/sh"`,
		"app/links d 0755 0:0", "app/links/root l 0:0 ->/", "app/etclink l 0:0 ->/etc",
		"app/vendor d 0755 0:0", "app/vendor/lib d 0755 0:0", `app/vendor/lib/lib.txt f 0644 0:0 "lib"`,
	}
	tests := []struct {
		name      string
		req       Request
		want      []string
		wantMtime int64 // of every copied entry but app itself
		wantErr   error
		errText   string
	}{
		{name: "default branch, submodules, no .git", req: Request{Sources: []string{r.url}, Dest: "/app/"}, want: main, wantMtime: r.t2},
		{name: "branch", req: Request{Sources: []string{r.url + "#feature"}, Dest: "/app"}, want: []string{"app d 0755 0:0", `app/hello.txt f 0644 0:0 "feature"`}, wantMtime: r.t1 + 5},
		{name: "annotated tag", req: Request{Sources: []string{r.url + "#v1"}, Dest: "/app"}, want: []string{"app d 0755 0:0", `app/hello.txt f 0644 0:0 "v1"`}, wantMtime: r.t1},
		{name: "full ref name", req: Request{Sources: []string{r.url + "#refs/heads/feature"}, Dest: "/app"}, want: []string{"app d 0755 0:0", `app/hello.txt f 0644 0:0 "feature"`}},
		{name: "commit", req: Request{Sources: []string{r.url + "#" + r.v1}, Dest: "/app"}, want: []string{"app d 0755 0:0", `app/hello.txt f 0644 0:0 "v1"`}},
		{name: "abbreviated commit", req: Request{Sources: []string{r.url + "#" + r.feat[:10]}, Dest: "/app"}, want: []string{"app d 0755 0:0", `app/hello.txt f 0644 0:0 "feature"`}},
		{
			name:      "subdirectory, epoch, chown, symbolic chmod",
			req:       Request{Sources: []string{r.url + "#main:sub"}, Dest: "/app", Epoch: &epoch, Chown: "5:6", Chmod: "go-rx"},
			want:      []string{"app d 0755 5:6", `app/data.txt f 0600 5:6 "data"`, `app/run.sh f 0700 5:6 "#!/bin/sh"`},
			wantMtime: epoch,
		},
		{name: "subdirectory file", req: Request{Sources: []string{r.url + "#main:sub/data.txt"}, Dest: "/app/"}, want: []string{"app d 0755 0:0", `app/data.txt f 0644 0:0 "data"`}},
		{name: "exclude", req: Request{Sources: []string{r.url + "#:sub"}, Dest: "/app", Exclude: []string{"*.sh"}}, want: []string{"app d 0755 0:0", `app/data.txt f 0644 0:0 "data"`}},
		{
			name: "subdirectory symlink to / stays in the checkout",
			req:  Request{Sources: []string{r.url + "#main:links/root"}, Dest: "/app/"},
			want: main,
		},
		{
			name:    "subdirectory symlink to /etc stays in the checkout",
			req:     Request{Sources: []string{r.url + "#main:etclink"}, Dest: "/app/"},
			wantErr: fs.ErrNotExist,
		},
		{name: "subdirectory with ..", req: Request{Sources: []string{r.url + "#main:sub/../.."}, Dest: "/app/"}, errText: `must not contain ".."`},
		{name: "checksum", req: Request{Sources: []string{r.url + "#v1"}, Dest: "/app", Checksum: r.v1[:12]}, want: []string{"app d 0755 0:0", `app/hello.txt f 0644 0:0 "v1"`}},
		{name: "checksum mismatch", req: Request{Sources: []string{r.url + "#feature"}, Dest: "/app", Checksum: r.v1}, wantErr: ErrChecksum},
		{name: "checksum not hex", req: Request{Sources: []string{r.url}, Dest: "/app", Checksum: "sha256:00"}, errText: "invalid --checksum"},
		{name: "checksum with several sources", req: Request{Sources: []string{r.url, "x"}, Dest: "/app/", Checksum: r.v1}, errText: "only source"},
		{name: "unknown ref", req: Request{Sources: []string{r.url + "#nope"}, Dest: "/app"}, errText: "ref nope not found"},
		{name: "ref that looks like an option", req: Request{Sources: []string{r.url + "#--upload-pack=x"}, Dest: "/app"}, errText: "invalid ref"},
		{name: "COPY does not clone", req: Request{Sources: []string{r.url}, Dest: "/app", Add: false}, errText: "only allowed with ADD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			req := tt.req
			req.SrcRoot, req.DestRoot, req.HostNetwork = src, dst, true // served on 127.0.0.1
			req.Add = tt.name != "COPY does not clone"
			err := Copy(context.Background(), req)
			if tt.wantErr != nil || tt.errText != "" {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want %v %q", err, tt.wantErr, tt.errText)
				}
				if ents, _ := os.ReadDir(dst); len(ents) != 0 {
					t.Errorf("wrote %v", ents)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := diffLines(listTree(t, dst), normalize(tt.want)); d != "" {
				t.Errorf("tree differs:%s", d)
			}
			if tt.wantMtime != 0 {
				checkMtimes(t, filepath.Join(dst, "app"), tt.wantMtime)
			}
		})
	}
}

// checkMtimes checks the mtime of everything below root.
func checkMtimes(t *testing.T, root string, want int64) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if got := fi.ModTime().Unix(); got != want {
			t.Errorf("mtime of %s = %d, want %d", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAddGitKeepGitDir(t *testing.T) {
	r := newGitRepo(t)
	dst := t.TempDir()
	req := Request{SrcRoot: t.TempDir(), DestRoot: dst, Sources: []string{r.url + "#v1"}, Dest: "/app", Add: true, KeepGitDir: true, HostNetwork: true}
	if err := Copy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	out := gitT(t, filepath.Join(dst, "app"), 0, "rev-parse", "HEAD")
	if out != r.v1 {
		t.Errorf("HEAD of the copied .git = %s, want %s", out, r.v1)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "app/hello.txt")); err != nil || string(b) != "v1" {
		t.Errorf("hello.txt = %q, %v", b, err)
	}
}

func TestGitCommit(t *testing.T) {
	r := newGitRepo(t)
	ctx := context.Background()
	tests := []struct {
		url, ref, want string
	}{
		{r.url, "", r.v2},
		{r.url + "#feature", "", r.feat},
		{r.url + "#feature:sub", "", r.feat},
		{r.url + "#feature", "v1", r.v1}, // ref wins over the fragment; tags are peeled
		{r.url, "refs/tags/v1", r.v1},
		{r.url, "main", r.v2},
		{r.url, r.v1, r.v1},
	}
	for _, tt := range tests {
		got, err := GitCommit(ctx, tt.url, tt.ref, true)
		if err != nil || got != tt.want {
			t.Errorf("GitCommit(%s, %q) = %s, %v; want %s", tt.url, tt.ref, got, err, tt.want)
		}
	}
	for _, ref := range []string{"nope", r.v1[:8], "-x"} {
		if got, err := GitCommit(ctx, r.url, ref, true); err == nil {
			t.Errorf("GitCommit(%q) = %s, want an error", ref, got)
		}
	}
}

func TestIsGitURL(t *testing.T) {
	for s, want := range map[string]bool{
		"https://github.com/owner/repo.git":           true,
		"https://github.com/owner/repo.git#v1:docs":   true,
		"http://127.0.0.1:8080/repo.git#main":         true,
		"HTTPS://host/x.git":                          true,
		"git://host/repo":                             true,
		"ssh://git@host/repo":                         true,
		"git@github.com:owner/repo.git#ref":           true,
		"user@host:path/repo":                         true,
		"https://example.com/file.tar.gz":             false,
		"https://example.com/repo.git/file":           false,
		"https://example.com/x?y=.git":                false,
		"ftp://host/repo.git":                         false,
		"file:///srv/repo.git":                        false,
		"repo.git":                                    false,
		"./dir@x:y":                                   false,
		"git@-oProxyCommand=x:repo":                   false,
		"dir/file":                                    false,
		"github.com/owner/repo":                       false,
		"user@host:/abs/repo.git":                     true,
		"https://user:pass@github.com/owner/repo.git": true,
	} {
		if got := IsGitURL(s); got != want {
			t.Errorf("IsGitURL(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestParseGitURL(t *testing.T) {
	tests := []struct {
		in      string
		want    gitSource
		errText string
	}{
		{in: "https://h/r.git", want: gitSource{remote: "https://h/r.git"}},
		{in: "https://h/r.git#v1", want: gitSource{remote: "https://h/r.git", ref: "v1"}},
		{in: "https://h/r.git#v1:docs/", want: gitSource{remote: "https://h/r.git", ref: "v1", subdir: "docs"}},
		{in: "git@h:o/r.git#:a//b/./c", want: gitSource{remote: "git@h:o/r.git", subdir: "a/b/c"}},
		{in: "https://h/r.git#v1:/", want: gitSource{remote: "https://h/r.git", ref: "v1"}},
		{in: "https://h/r.git#v1:../x", errText: `must not contain ".."`},
		{in: "https://h/r.git#v1:a/../../x", errText: `must not contain ".."`},
		{in: "https://h/r.git#a..b", errText: "invalid ref"},
		{in: "https://h/r.git#a b", errText: "invalid ref"},
		{in: "https://h/r.git?ref=x", errText: "query options"},
		{in: "https://u:secret@h/r.git#-x", errText: "invalid ref"},
	}
	for _, tt := range tests {
		got, err := parseGitURL(tt.in)
		if tt.errText != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("parseGitURL(%q): err %v, want %q", tt.in, err, tt.errText)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("parseGitURL(%q): error shows the password: %v", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseGitURL(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestAddGitCanceled(t *testing.T) {
	r := newGitRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Copy(ctx, Request{SrcRoot: t.TempDir(), DestRoot: t.TempDir(), Sources: []string{r.url}, Dest: "/x", Add: true, HostNetwork: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
}

// TestAddGitRefusesLocalSubmodule checks that a repository cannot make
// the build read the host's repositories through a submodule with a
// local path (the file transport).
func TestAddGitRefusesLocalSubmodule(t *testing.T) {
	r := newGitRepo(t)
	w := t.TempDir()
	gitT(t, w, r.t1, "init", "-q")
	gitT(t, w, r.t1, "submodule", "-q", "add", filepath.Join(r.base, "lib.git"), "lib")
	gitT(t, w, r.t1, "commit", "-q", "-m", "local submodule")
	gitT(t, r.base, r.t1, "clone", "-q", "--bare", w, "evil.git")
	evil := strings.TrimSuffix(r.url, "repo.git") + "evil.git"
	dst := t.TempDir()
	err := Copy(context.Background(), Request{SrcRoot: t.TempDir(), DestRoot: dst, Sources: []string{evil}, Dest: "/x", Add: true, HostNetwork: true})
	if err == nil || !strings.Contains(err.Error(), "submodules") {
		t.Fatalf("err = %v, want a submodule error", err)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Errorf("wrote %v", ents)
	}
}

func TestSelectGit(t *testing.T) {
	got, err := Select(Request{SrcRoot: t.TempDir(), Add: true, Sources: []string{"https://h/r.git#v1:docs", "https://h/f.bin", "git@h:o/r"}})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, s := range got {
		lines = append(lines, strconv.Itoa(s.Match)+"|"+s.URL+"|"+strconv.FormatBool(s.Git))
	}
	want := []string{"0|https://h/r.git#v1:docs|true", "1|https://h/f.bin|false", "2|git@h:o/r|true"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("Select:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if _, err := Select(Request{SrcRoot: t.TempDir(), Add: true, Sources: []string{"https://h/r.git#v1:../x"}}); err == nil {
		t.Error("subdirectory with ..: no error")
	}
}

// TestAddGitHostAddress checks that without HostNetwork a Git source on
// the host's loopback cannot be read (over http, ssh or git://), and that
// it can with it.
func TestAddGitHostAddress(t *testing.T) {
	r := newGitRepo(t)
	for _, src := range []string{r.url, r.url + "#feature", "git://127.0.0.1/repo.git", "ssh://localhost/repo.git", "git@localhost:repo.git"} {
		checkHostRefused(t, src)
	}
	if _, err := GitCommit(context.Background(), r.url, "", false); !errors.Is(err, ErrHostAddress) {
		t.Errorf("GitCommit without host networking: err = %v, want ErrHostAddress", err)
	}
	dst := t.TempDir()
	if err := Copy(context.Background(), Request{SrcRoot: t.TempDir(), DestRoot: dst, Sources: []string{r.url + "#v1"}, Dest: "/x", Add: true, HostNetwork: true}); err != nil {
		t.Fatalf("with HostNetwork: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "x/hello.txt")); err != nil || string(b) != "v1" {
		t.Errorf("hello.txt = %q, %v", b, err)
	}
}
