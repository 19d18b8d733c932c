package copier

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newServer(t *testing.T) *httptest.Server {
	lastMod := time.Unix(1e9, 0).UTC().Format(http.TimeFormat)
	mux := http.NewServeMux()
	mux.HandleFunc("/files/app.bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", lastMod)
		fmt.Fprint(w, "payload")
	})
	mux.HandleFunc("/archive.tar", func(w http.ResponseWriter, r *http.Request) {
		w.Write(makeTar(t, te{name: "in", typ: '0', body: "x"}))
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `attachment; filename="../named.txt"`)
		fmt.Fprint(w, "cd")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			fmt.Fprint(w, "root")
			return
		}
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux) // on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

func TestAddURL(t *testing.T) {
	srv := newServer(t)
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("payload")))
	epoch := int64(1234567890)
	tests := []struct {
		name      string
		req       Request
		want      []string
		wantMtime int64
		errText   string
		wantErr   error
	}{
		{
			name:      "into dir",
			req:       Request{Sources: []string{srv.URL + "/files/app.bin"}, Dest: "/dl/"},
			want:      []string{"dl d 0755 0:0", `dl/app.bin f 0600 0:0 "payload"`},
			wantMtime: 1e9,
		},
		{
			name: "as file, chown, chmod",
			req:  Request{Sources: []string{srv.URL + "/files/app.bin"}, Dest: "/dl/x", Chown: "5:6", Chmod: "755"},
			want: []string{"dl d 0755 5:6", `dl/x f 0755 5:6 "payload"`},
		},
		{
			name:      "epoch",
			req:       Request{Sources: []string{srv.URL + "/files/app.bin"}, Dest: "/x", Epoch: &epoch},
			want:      []string{`x f 0600 0:0 "payload"`},
			wantMtime: epoch,
		},
		{
			name: "checksum ok",
			req:  Request{Sources: []string{srv.URL + "/files/app.bin"}, Dest: "/x", Checksum: sum},
			want: []string{`x f 0600 0:0 "payload"`},
		},
		{
			name:    "checksum mismatch writes nothing",
			req:     Request{Sources: []string{srv.URL + "/files/app.bin"}, Dest: "/dl/x", Checksum: "sha256:" + strings.Repeat("0", 64)},
			wantErr: ErrChecksum,
		},
		{
			name:    "bad checksum",
			req:     Request{Sources: []string{srv.URL + "/files/app.bin"}, Dest: "/dl/x", Checksum: "md5:00"},
			errText: "invalid --checksum",
		},
		{
			name:    "http error names url and status",
			req:     Request{Sources: []string{srv.URL + "/missing"}, Dest: "/dl/"},
			errText: srv.URL + "/missing: 404 Not Found",
		},
		{
			name: "archive not extracted",
			req:  Request{Sources: []string{srv.URL + "/archive.tar"}, Dest: "/dl/"},
		},
		{
			name: "content-disposition is not a name (BuildKit's frontend names downloads)",
			req:  Request{Sources: []string{srv.URL + "/download"}, Dest: "/dl/"},
			want: []string{"dl d 0755 0:0", `dl/download f 0600 0:0 "cd"`},
		},
		{
			name: "no name in url",
			req:  Request{Sources: []string{srv.URL + "/"}, Dest: "/dl/"},
			want: []string{"dl d 0755 0:0", `dl/__unnamed__ f 0600 0:0 "root"`},
		},
		{
			name: "url and local file",
			req:  Request{Sources: []string{srv.URL + "/files/app.bin", "local"}, Dest: "/dl/"},
			want: []string{"dl d 0755 0:0", `dl/app.bin f 0600 0:0 "payload"`, `dl/local f 0644 0:0 "l"`},
		},
		{
			name:    "local checksum mismatch",
			req:     Request{Sources: []string{"local"}, Dest: "/dl/", Checksum: sum},
			wantErr: ErrChecksum,
		},
		{
			name: "local checksum ok",
			req:  Request{Sources: []string{"local"}, Dest: "/dl/", Checksum: fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("l")))},
			want: []string{"dl d 0755 0:0", `dl/local f 0644 0:0 "l"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			build(t, src, "f local l")
			req := tt.req
			req.SrcRoot, req.DestRoot, req.Add, req.HostNetwork = src, dst, true, true // served on 127.0.0.1
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
			if tt.name == "archive not extracted" {
				fi, err := os.Stat(filepath.Join(dst, "dl/archive.tar"))
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("archive.tar: %v", err)
				}
				return
			}
			if d := diffLines(listTree(t, dst), normalize(tt.want)); d != "" {
				t.Errorf("tree differs:%s", d)
			}
			if tt.wantMtime != 0 {
				p := strings.Fields(tt.want[len(tt.want)-1])[0]
				fi, _ := os.Stat(filepath.Join(dst, p))
				if fi.ModTime().Unix() != tt.wantMtime {
					t.Errorf("mtime %d, want %d", fi.ModTime().Unix(), tt.wantMtime)
				}
			}
		})
	}
}

func TestAddURLCanceled(t *testing.T) {
	block := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel() // the download is under way: cancel it
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	err := Copy(ctx, Request{SrcRoot: t.TempDir(), DestRoot: t.TempDir(), Sources: []string{srv.URL + "/x"}, Dest: "/x", Add: true, HostNetwork: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestAddUnpack(t *testing.T) {
	srv := newServer(t)
	yes, no := true, false
	local := makeTar(t, te{name: "d/", typ: '5', mode: 0o755}, te{name: "d/in", typ: '0', body: "x", mode: 0o640})
	extracted := []string{"out d 0755 0:0", "out/d d 0755 0:0", `out/d/in f 0640 0:0 "x"`}
	tests := []struct {
		name   string
		source string
		unpack *bool
		chmod  string
		want   []string
	}{
		{name: "local, default", source: "a.tar", want: extracted},
		{name: "local, unpack=true", source: "a.tar", unpack: &yes, want: extracted},
		{name: "local, unpack=false", source: "a.tar", unpack: &no, want: []string{"out d 0755 0:0", "out/a.tar f 0644 0:0 " + strconv.Quote(string(local))}},
		{name: "remote, default", source: srv.URL + "/archive.tar", want: []string{"out d 0755 0:0", "out/archive.tar f 0600 0:0 " + strconv.Quote(string(makeTar(t, te{name: "in", typ: '0', body: "x"})))}},
		{name: "remote, unpack=false", source: srv.URL + "/archive.tar", unpack: &no, want: []string{"out d 0755 0:0", "out/archive.tar f 0600 0:0 " + strconv.Quote(string(makeTar(t, te{name: "in", typ: '0', body: "x"})))}},
		{name: "remote, unpack=true", source: srv.URL + "/archive.tar", unpack: &yes, want: []string{"out d 0755 0:0", `out/in f 0644 0:0 "x"`}},
		{name: "remote, unpack=true, symbolic chmod", source: srv.URL + "/archive.tar", unpack: &yes, chmod: "u+x,g=u", want: []string{"out d 0755 0:0", `out/in f 0774 0:0 "x"`}},
		{name: "remote non-archive, unpack=true", source: srv.URL + "/files/app.bin", unpack: &yes, want: []string{"out d 0755 0:0", `out/app.bin f 0600 0:0 "payload"`}},
		{name: "remote non-archive, symbolic chmod", source: srv.URL + "/files/app.bin", chmod: "a+rX", want: []string{"out d 0755 0:0", `out/app.bin f 0644 0:0 "payload"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(src, "a.tar"), local, 0o644); err != nil {
				t.Fatal(err)
			}
			req := Request{SrcRoot: src, DestRoot: dst, Sources: []string{tt.source}, Dest: "/out/", Add: true, Unpack: tt.unpack, Chmod: tt.chmod, HostNetwork: true}
			if err := Copy(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			if d := diffLines(listTree(t, dst), normalize(tt.want)); d != "" {
				t.Errorf("tree differs:%s", d)
			}
		})
	}
}

// TestAddURLHostAddress checks that without HostNetwork a URL on the
// host's loopback (by address or name) cannot be read.
func TestAddURLHostAddress(t *testing.T) {
	srv := newServer(t)
	for _, src := range []string{srv.URL + "/files/app.bin", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/files/app.bin", "http://[::ffff:127.0.0.1]:1/x", "http://169.254.169.254/latest"} {
		checkHostRefused(t, src)
	}
}

func TestHostAddr(t *testing.T) {
	for _, tt := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true}, {"127.9.9.9", true}, {"::1", true}, {"::ffff:127.0.0.1", true},
		{"169.254.169.254", true}, {"fe80::1", true}, {"0.0.0.0", true}, {"::", true}, {"::ffff:169.254.1.1", true},
		{"10.0.0.1", false}, {"93.184.216.34", false}, {"2001:db8::1", false},
	} {
		if got := hostAddr(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("hostAddr(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
}

// checkHostRefused checks that ADD of src without HostNetwork fails with
// ErrHostAddress and writes nothing.
func checkHostRefused(t *testing.T, src string) {
	t.Helper()
	dst := t.TempDir()
	err := Copy(context.Background(), Request{SrcRoot: t.TempDir(), DestRoot: dst, Sources: []string{src}, Dest: "/x", Add: true})
	if !errors.Is(err, ErrHostAddress) {
		t.Errorf("%s: err = %v, want ErrHostAddress", src, err)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Errorf("%s: wrote %v", src, ents)
	}
}
