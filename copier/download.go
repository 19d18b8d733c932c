package copier

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
)

// ErrChecksum is returned when content does not match --checksum.
var ErrChecksum = errors.New("checksum mismatch")

type checksum struct {
	algo string
	sum  []byte
	new  func() hash.Hash
}

func parseChecksum(s string) (*checksum, error) {
	algo, hexSum, _ := strings.Cut(s, ":")
	c := &checksum{algo: algo}
	size := 0
	switch algo {
	case "sha256":
		c.new, size = sha256.New, sha256.Size
	case "sha384":
		c.new, size = sha512.New384, sha512.Size384
	case "sha512":
		c.new, size = sha512.New, sha512.Size
	default:
		return nil, fmt.Errorf("invalid --checksum=%s: want sha256:, sha384: or sha512: and hex digits", s)
	}
	sum, err := hex.DecodeString(hexSum)
	if err != nil || len(sum) != size {
		return nil, fmt.Errorf("invalid --checksum=%s: want %d hex digits", s, 2*size)
	}
	c.sum = sum
	return c, nil
}

func (c *checksum) check(got hash.Hash, what string) error {
	if sum := got.Sum(nil); string(sum) != string(c.sum) {
		return fmt.Errorf("%s: %w: want %s:%x, got %s:%x", what, ErrChecksum, c.algo, c.sum, c.algo, sum)
	}
	return nil
}

// verifyLocal checks --checksum against a local source; only single regular
// files (or URLs, checked while downloading) can be verified.
func (o *op) verifyLocal(s Source) error {
	if s.URL != "" {
		return nil
	}
	if s.Sub != "" || !s.Info.Mode().IsRegular() {
		return fmt.Errorf("--checksum on %s: only files and URLs can be verified", s.Rel)
	}
	f, err := openSource(s)
	if err != nil {
		return err
	}
	defer f.Close()
	h := o.checksum.new()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("reading %s: %w", s.Rel, err)
	}
	return o.checksum.check(h, s.Rel)
}

// addURL downloads rawURL to the destination: dest/<name> when dest is a
// directory, else dest itself; mode 0600 (changed by --chmod). With
// --unpack=true an archive is extracted into dest instead.
func (o *op) addURL(ctx context.Context, rawURL string) error {
	f, name, mtime, err := o.download(ctx, rawURL)
	if err != nil {
		return err
	}
	defer f.Close()
	if o.unpack(true) {
		done, err := o.extractFile(ctx, f, redact(rawURL))
		if done || err != nil {
			return err
		}
	}
	target := o.dest
	if o.dirDest {
		target = path.Join(o.dest, name)
	}
	m := meta{mode: o.mode(0o600, false), mtime: mtime}
	if o.chown != nil {
		m.owner = *o.chown
	}
	dir, err := o.dst.mkdirAll(path.Dir(target), o.created)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := writeFile(dir, path.Base(target), f, m); err != nil {
		return fmt.Errorf("writing %s: %w", target, err)
	}
	return nil
}

// download fetches rawURL into an unlinked temporary file, verified
// against the checksum and rewound, and returns the file name to use in a
// destination directory and the mtime to give it.
func (o *op) download(ctx context.Context, rawURL string) (f *os.File, name string, mtime time.Time, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", mtime, fmt.Errorf("parsing url: %w", err)
	}
	shown := u.Redacted()
	client := o.req.HTTPClient
	if client == nil {
		client = guardedClient
		if o.req.HostNetwork {
			client = hostClient
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", mtime, fmt.Errorf("downloading %s: %w", shown, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", mtime, fmt.Errorf("downloading %s: %w", shown, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, "", mtime, fmt.Errorf("downloading %s: %s", shown, resp.Status)
	}
	f, err = os.CreateTemp("", "lading-add-")
	if err != nil {
		return nil, "", mtime, fmt.Errorf("downloading %s: %w", shown, err)
	}
	os.Remove(f.Name())
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	var w io.Writer = f
	var h hash.Hash
	if o.checksum != nil {
		h = o.checksum.new()
		w = io.MultiWriter(f, h)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return nil, "", mtime, fmt.Errorf("downloading %s: %w", shown, err)
	}
	if h != nil {
		if err := o.checksum.check(h, shown); err != nil {
			return nil, "", mtime, err
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", mtime, err
	}
	switch {
	case o.req.Epoch != nil:
		mtime = time.Unix(*o.req.Epoch, 0)
	default:
		if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
			mtime = t
		}
	}
	return f, fileName(u, resp), mtime, nil
}

// redact shows a URL without its password.
func redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Redacted()
	}
	return rawURL
}

// fileName names a download as BuildKit's Dockerfile frontend does: the
// last element of the URL path, else "__unnamed__" (a Content-Disposition
// header is not used: the frontend always gives the name).
func fileName(u *url.URL, _ *http.Response) string {
	if b := path.Base(u.Path); b != "." && b != "/" && b != "" && b != ".." {
		return b
	}
	return "__unnamed__"
}
