package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-build/lading/store"
)

// ErrBadArchive is returned (wrapped) for an archive lading refuses:
// entries escaping the archive, links where blobs belong, missing files.
var ErrBadArchive = errors.New("bad image archive")

// ImportArchive copies the image in an archive into the store and returns
// the stored image. ref is "oci-archive:PATH" (an OCI image layout tar;
// PATH:NAME selects the index entry whose ref.name or containerd name is
// NAME, otherwise the first) or "docker-archive:PATH" (a `docker save`
// tar; PATH:NAME selects by repo tag). Every blob is checked against its
// digest as it is stored; docker archive layers are compressed with
// WriteLayer and checked against the config's diff ids.
func ImportArchive(ctx context.Context, s *store.Store, ref string) (v1.Image, error) {
	return ImportArchiveFor(ctx, s, ref, HostPlatform())
}

// ImportArchiveFor is ImportArchive choosing, from an index, the image for
// platform want (with the variant rules of Pull: arm64 is arm64/v8).
func ImportArchiveFor(ctx context.Context, s *store.Store, ref string, want v1.Platform) (v1.Image, error) {
	transport, rest, ok := strings.Cut(ref, ":")
	if !ok {
		return nil, fmt.Errorf("importing %s: want oci-archive:PATH or docker-archive:PATH", ref)
	}
	file, sel := splitArchiveRef(rest)
	var (
		img v1.Image
		err error
	)
	switch transport {
	case "oci-archive":
		img, err = importOCI(ctx, s, file, sel, want)
	case "docker-archive":
		img, err = importDocker(ctx, s, file, sel)
	default:
		return nil, fmt.Errorf("importing %s: unknown transport %q", ref, transport)
	}
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", ref, err)
	}
	return img, nil
}

// splitArchiveRef splits "PATH[:NAME]": the whole string when it names an
// existing file, otherwise at the first colon after which the part before
// it is an existing file (names contain colons, "app:1.0"; so can paths).
func splitArchiveRef(ref string) (file, sel string) {
	if _, err := os.Stat(ref); err == nil {
		return ref, ""
	}
	for i := 0; i < len(ref); i++ {
		if ref[i] != ':' {
			continue
		}
		if _, err := os.Stat(ref[:i]); err == nil {
			return ref[:i], ref[i+1:]
		}
	}
	return ref, ""
}

// importOCI imports from an OCI layout tar in two passes. The first
// reads only tar headers and index.json; then the selected image's
// manifests and config are read (each bounded, checked against its digest
// and the size its descriptor claims) and checked: media types, sizes,
// diff_ids. Only then does the second pass copy the image's blobs,
// verified, into the store; a lying archive is refused before any layer
// is read, and blobs of other images in the archive are not stored.
func importOCI(ctx context.Context, s *store.Store, file, sel string, want v1.Platform) (v1.Image, error) {
	a, idx, err := openOCI(ctx, file)
	if err != nil {
		return nil, err
	}
	defer a.f.Close()
	desc, err := selectManifest(idx, sel, want)
	if err != nil {
		return nil, err
	}
	manifest, blobs, err := a.plan(desc, want, 0)
	if err != nil {
		return nil, err
	}
	if err := a.store(ctx, s, blobs); err != nil {
		return nil, err
	}
	return Load(s, manifest.String())
}

// openOCI opens an OCI layout tar, scans it and parses its index.json;
// the caller closes a.f.
func openOCI(ctx context.Context, file string) (a *ociArchive, top *v1.IndexManifest, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if a, err = scanOCI(ctx, f); err != nil {
		return nil, nil, err
	}
	if top, err = v1.ParseIndexManifest(bytes.NewReader(a.index)); err != nil {
		return nil, nil, fmt.Errorf("parsing index.json: %w", err)
	}
	return a, top, nil
}

// readIndex reads and parses the index desc names, verified.
func (a *ociArchive) readIndex(desc v1.Descriptor) (*v1.IndexManifest, []byte, error) {
	raw, err := a.read(desc, "index", maxIndexSize)
	if err != nil {
		return nil, nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("parsing index %s: %w", desc.Digest, err)
	}
	return idx, raw, nil
}

// store copies blobs from the archive into the store, each verified.
func (a *ociArchive) store(ctx context.Context, s *store.Store, blobs []v1.Descriptor) error {
	for _, d := range blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.HasBlob(d.Digest.String()) {
			continue
		}
		e := a.blobs[d.Digest.Hex]
		if _, _, err := s.WriteBlob(ctxReader{ctx, io.NewSectionReader(a.f, e.off, e.size)}, d.Digest.String()); err != nil {
			return fmt.Errorf("storing blob %s: %w", d.Digest, err)
		}
	}
	return nil
}

// ImportArchiveIndex is ImportArchive keeping every platform: when the
// archive's image is an OCI image index (as a multi-platform build or
// skopeo copy --all writes it), each of its images and then the index
// are stored, and the index digest is returned with isIndex true.
// Otherwise it imports the image for this machine, as ImportArchive.
func ImportArchiveIndex(ctx context.Context, s *store.Store, ref string) (digest v1.Hash, isIndex bool, err error) {
	if file, ok := strings.CutPrefix(ref, "oci-archive:"); ok {
		file, sel := splitArchiveRef(file)
		d, ok, err := importOCIIndex(ctx, s, file, sel)
		if err != nil {
			return v1.Hash{}, false, fmt.Errorf("importing %s: %w", ref, err)
		}
		if ok {
			return d, true, nil
		}
	}
	img, err := ImportArchive(ctx, s, ref)
	if err != nil {
		return v1.Hash{}, false, err
	}
	d, err := img.Digest()
	return d, false, err
}

// importOCIIndex imports the index an OCI archive's entry points at; ok
// is false when the entry is an image.
func importOCIIndex(ctx context.Context, s *store.Store, file, sel string) (v1.Hash, bool, error) {
	a, top, err := openOCI(ctx, file)
	if err != nil {
		return v1.Hash{}, false, err
	}
	defer a.f.Close()
	if len(top.Manifests) == 0 || sel == "" && top.Manifests[0].Platform != nil {
		return v1.Hash{}, false, nil
	}
	desc, err := selectManifest(top, sel, HostPlatform())
	if err != nil || !desc.MediaType.IsIndex() {
		return v1.Hash{}, false, err
	}
	idx, raw, err := a.readIndex(desc)
	if err != nil {
		return v1.Hash{}, false, err
	}
	var blobs []v1.Descriptor
	for _, d := range idx.Manifests {
		if d.MediaType.IsIndex() {
			return v1.Hash{}, false, fmt.Errorf("index %s: nested indexes: %w", desc.Digest, ErrUnsupportedMediaType)
		}
		_, bs, err := a.plan(d, HostPlatform(), 1)
		if err != nil {
			return v1.Hash{}, false, err
		}
		blobs = append(blobs, bs...)
	}
	if err := a.store(ctx, s, blobs); err != nil {
		return v1.Hash{}, false, err
	}
	if err := putBytes(s, raw, desc.Digest); err != nil {
		return v1.Hash{}, false, err
	}
	return desc.Digest, true, nil
}

// ociArchive is what the first pass learns of an OCI layout tar.
type ociArchive struct {
	f     *os.File
	index []byte
	blobs map[string]tarEntry // by hex digest
}

// tarEntry is where a regular file's data lies in the tar.
type tarEntry struct{ off, size int64 }

// scanOCI reads the tar's headers (skipping data) and index.json.
func scanOCI(ctx context.Context, f *os.File) (*ociArchive, error) {
	a := &ociArchive{f: f, blobs: map[string]tarEntry{}}
	err := walkTar(ctx, f, func(name string, h *tar.Header, e tarEntry, tr *tar.Reader) error {
		if h.Typeflag == tar.TypeDir {
			return nil
		}
		switch {
		case name == "index.json":
			if h.Typeflag != tar.TypeReg {
				return fmt.Errorf("%w: index.json is not a regular file", ErrBadArchive)
			}
			var err error
			a.index, err = readMeta(tr, name, h.Size)
			return err
		case strings.HasPrefix(name, "blobs/sha256/"):
			if h.Typeflag != tar.TypeReg {
				return fmt.Errorf("%w: %s is not a regular file", ErrBadArchive, name)
			}
			hex := strings.TrimPrefix(name, "blobs/sha256/")
			if _, err := store.ParseDigest("sha256:" + hex); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrBadArchive, name, err)
			}
			a.blobs[hex] = e
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if a.index == nil {
		return nil, fmt.Errorf("%w: no index.json", ErrBadArchive)
	}
	return a, nil
}

// walkTar calls fn with every entry of the tar f: its clean name, header
// and where its data lies. Names escaping the archive and entries
// claiming more bytes than the archive holds are refused. fn may read the
// entry's data from tr.
func walkTar(ctx context.Context, f *os.File, fn func(name string, h *tar.Header, e tarEntry, tr *tar.Reader) error) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
		name, err := cleanEntry(h.Name)
		if err != nil {
			return err
		}
		// Next left the file at the entry's data.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		if h.Size < 0 || h.Size > info.Size()-off {
			return fmt.Errorf("%w: entry %s claims %d bytes, more than the archive holds", ErrBadArchive, h.Name, h.Size)
		}
		if err := fn(name, h, tarEntry{off: off, size: h.Size}, tr); err != nil {
			return err
		}
	}
}

// readMeta reads a metadata file (index.json, manifest.json) of an
// archive, refusing one larger than maxIndexSize before reading it.
func readMeta(tr *tar.Reader, name string, size int64) ([]byte, error) {
	if size > maxIndexSize {
		return nil, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrBadArchive, name, size, maxIndexSize)
	}
	b, err := readLimited(tr, maxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return b, nil
}

// entry returns the tar entry of the blob desc names, checking that the
// archive has it with the size desc claims, and that the size is at most
// limit (0: no limit).
func (a *ociArchive) entry(desc v1.Descriptor, what string, limit int64) (tarEntry, error) {
	if desc.Digest.Algorithm != "sha256" {
		return tarEntry{}, fmt.Errorf("%w: %s %s: not a sha256 digest", ErrBadArchive, what, desc.Digest)
	}
	e, ok := a.blobs[desc.Digest.Hex]
	if !ok {
		return tarEntry{}, fmt.Errorf("%w: %s %s is not in the archive", ErrBadArchive, what, desc.Digest)
	}
	if desc.Size != e.size {
		return tarEntry{}, fmt.Errorf("%w: %s %s: descriptor says %d bytes, the archive holds %d", ErrBadArchive, what, desc.Digest, desc.Size, e.size)
	}
	if limit > 0 && e.size > limit {
		return tarEntry{}, fmt.Errorf("%w: %s %s is %d bytes (limit %d)", ErrBadArchive, what, desc.Digest, e.size, limit)
	}
	return e, nil
}

// read reads a small blob from the archive and checks its digest.
func (a *ociArchive) read(desc v1.Descriptor, what string, limit int64) ([]byte, error) {
	e, err := a.entry(desc, what, limit)
	if err != nil {
		return nil, err
	}
	b := make([]byte, e.size)
	if _, err := a.f.ReadAt(b, e.off); err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, desc.Digest, err)
	}
	if got, _, _ := v1.SHA256(bytes.NewReader(b)); got != desc.Digest {
		return nil, fmt.Errorf("%w: %s %s: %w: content hashes to %s", ErrBadArchive, what, desc.Digest, store.ErrDigestMismatch, got)
	}
	return b, nil
}

// plan checks the image desc points at (for an index, the entry for
// platform want) and returns its manifest digest and every blob to store:
// manifest, config, then layers.
func (a *ociArchive) plan(desc v1.Descriptor, want v1.Platform, depth int) (v1.Hash, []v1.Descriptor, error) {
	if !isManifestType(desc.MediaType) {
		return v1.Hash{}, nil, fmt.Errorf("%w: index entry %s is %q, not an image manifest", ErrUnsupportedMediaType, desc.Digest, desc.MediaType)
	}
	if desc.MediaType.IsIndex() {
		if depth > 4 {
			return v1.Hash{}, nil, fmt.Errorf("%w: indexes nested too deep", ErrBadArchive)
		}
		idx, _, err := a.readIndex(desc)
		if err != nil {
			return v1.Hash{}, nil, err
		}
		d, err := platformEntry(idx, desc.Digest, want)
		if err != nil {
			return v1.Hash{}, nil, err
		}
		return a.plan(d, want, depth+1)
	}
	raw, err := a.read(desc, "manifest", maxManifestSize)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, nil, fmt.Errorf("parsing manifest %s: %w", desc.Digest, err)
	}
	if err := checkManifest(m); err != nil {
		return v1.Hash{}, nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	rawCfg, err := a.read(m.Config, "config", maxConfigSize)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	if _, err := parseConfig(rawCfg, m); err != nil {
		return v1.Hash{}, nil, err
	}
	blobs := []v1.Descriptor{desc, m.Config}
	for _, l := range m.Layers {
		if _, err := a.entry(l, "layer", 0); err != nil {
			return v1.Hash{}, nil, err
		}
		blobs = append(blobs, l)
	}
	return desc.Digest, blobs, nil
}

// cleanEntry rejects tar entry names that escape the archive root.
func cleanEntry(n string) (string, error) {
	c := path.Clean(strings.TrimPrefix(n, "./"))
	if n == "" || path.IsAbs(n) || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(n, "\\") {
		return "", fmt.Errorf("%w: entry %q escapes the archive", ErrBadArchive, n)
	}
	return c, nil
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// selectManifest picks the index entry sel names; without sel, the entry
// for platform want when the entries name platforms (an index.json
// listing one image per platform), else the first.
func selectManifest(idx *v1.IndexManifest, sel string, want v1.Platform) (v1.Descriptor, error) {
	if len(idx.Manifests) == 0 {
		return v1.Descriptor{}, fmt.Errorf("%w: empty index.json", ErrBadArchive)
	}
	if sel == "" {
		if idx.Manifests[0].Platform != nil {
			return matchPlatform(idx.Manifests, want)
		}
		return idx.Manifests[0], nil
	}
	names := nameForms(sel)
	for _, d := range idx.Manifests {
		if names[d.Annotations[AnnotationRefName]] || names[d.Annotations[AnnotationContainerdName]] {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no image named %q in the archive: %w", sel, store.ErrNotFound)
}

// platformEntry returns the entry of an index for platform want (as
// matchPlatform chooses), else a nested index.
func platformEntry(idx *v1.IndexManifest, digest v1.Hash, want v1.Platform) (v1.Descriptor, error) {
	d, err := matchPlatform(idx.Manifests, want)
	if err == nil {
		return d, nil
	}
	for _, d := range idx.Manifests {
		if d.MediaType.IsIndex() {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("index %s: %w: %w", digest, err, store.ErrNotFound)
}

// importDocker reads a `docker save` tar with ggcr, compresses each layer
// into the store and writes an OCI manifest over the original config, so
// the config digest (docker's image ID) is kept.
func importDocker(ctx context.Context, s *store.Store, file, sel string) (v1.Image, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, err
	}
	var tag *name.Tag
	if sel != "" {
		t, err := name.NewTag(sel, name.WeakValidation)
		if err != nil {
			return nil, fmt.Errorf("parsing %q: %w", sel, err)
		}
		tag = &t
	}
	if err := checkDockerArchive(file, sel); err != nil {
		return nil, err
	}
	src, err := tarball.ImageFromPath(file, tag)
	if err != nil {
		return nil, fmt.Errorf("reading archive: %w", err)
	}
	rawCfg, err := src.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	for _, diffID := range cfg.RootFS.DiffIDs {
		l, err := importDockerLayer(ctx, s, src, diffID)
		if err != nil {
			return nil, err
		}
		d, _ := l.Digest()
		size, _ := l.Size()
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Digest: d, Size: size})
	}
	cfgDigest, cfgSize, err := s.WriteBlob(bytes.NewReader(rawCfg), "")
	if err != nil {
		return nil, fmt.Errorf("storing config: %w", err)
	}
	if m.Config.Digest, err = v1.NewHash(cfgDigest); err != nil {
		return nil, err
	}
	m.Config.MediaType, m.Config.Size = types.OCIConfigJSON, cfgSize
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	dgst, _, err := s.WriteBlob(bytes.NewReader(raw), "")
	if err != nil {
		return nil, fmt.Errorf("storing manifest: %w", err)
	}
	return Load(s, dgst)
}

func importDockerLayer(ctx context.Context, s *store.Store, src v1.Image, diffID v1.Hash) (v1.Layer, error) {
	sl, err := src.LayerByDiffID(diffID)
	if err != nil {
		return nil, fmt.Errorf("finding layer %s: %w", diffID, err)
	}
	rc, err := sl.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("reading layer %s: %w", diffID, err)
	}
	defer rc.Close()
	l, err := WriteLayer(ctx, s, rc)
	if err != nil {
		return nil, err
	}
	if got, _ := l.DiffID(); got != diffID {
		return nil, fmt.Errorf("%w: layer has diff id %s, config says %s", store.ErrDigestMismatch, got, diffID)
	}
	return l, nil
}

// checkDockerArchive checks a `docker save` tar before ggcr reads it:
// manifest.json and the selected image's config are bounded and parse,
// the config has one diff_id per layer, and every file they name is a
// regular file in the archive. ggcr reads configs whole, so a config
// claiming 2^62 bytes must be refused here.
func checkDockerArchive(file, sel string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	entries := dockerTar{}
	var manifest []byte
	err = walkTar(context.Background(), f, func(name string, h *tar.Header, e tarEntry, tr *tar.Reader) error {
		entries[name] = append(entries[name], dockerEntry{tarEntry: e, typ: h.Typeflag, link: h.Linkname})
		if name == "manifest.json" && len(entries[name]) == 1 && h.Typeflag == tar.TypeReg {
			var err error
			manifest, err = readMeta(tr, name, h.Size)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := entries.regular("manifest.json", "manifest.json"); err != nil {
		return err
	}
	var m []dockerManifestEntry
	if err := json.Unmarshal(manifest, &m); err != nil {
		return fmt.Errorf("%w: parsing manifest.json: %w", ErrBadArchive, err)
	}
	e, err := selectDockerEntry(m, sel)
	if err != nil {
		return err
	}
	if len(e.Layers) > maxLayers {
		return fmt.Errorf("%w: %d layers (limit %d)", ErrBadArchive, len(e.Layers), maxLayers)
	}
	cfgEntry, err := entries.regular(e.Config, "config "+e.Config)
	if err != nil {
		return err
	}
	if cfgEntry.size > maxConfigSize {
		return fmt.Errorf("%w: config %s is %d bytes (limit %d)", ErrBadArchive, e.Config, cfgEntry.size, maxConfigSize)
	}
	raw := make([]byte, cfgEntry.size)
	if _, err := f.ReadAt(raw, cfgEntry.off); err != nil {
		return fmt.Errorf("reading config %s: %w", e.Config, err)
	}
	layers := make([]v1.Descriptor, len(e.Layers))
	for i, l := range e.Layers {
		if err := entries.layer(l); err != nil {
			return err
		}
		layers[i].MediaType = types.DockerLayer
	}
	_, err = parseConfig(raw, &v1.Manifest{Layers: layers})
	return err
}

// dockerEntry is one tar entry of a docker archive.
type dockerEntry struct {
	tarEntry
	typ  byte
	link string
}

// dockerTar holds a docker archive's entries by clean name, each name
// with every entry that has it, in order.
type dockerTar map[string][]dockerEntry

// regular returns the entry named name, which must be the only entry of
// that name and a regular file: go-containerregistry reads the first
// entry of a name and follows links, so a second entry or a link would
// let it read something other than what was checked.
func (d dockerTar) regular(name, what string) (tarEntry, error) {
	es := d[path.Clean(name)]
	switch {
	case len(es) == 0:
		return tarEntry{}, fmt.Errorf("%w: %s is not in the archive", ErrBadArchive, what)
	case len(es) > 1:
		return tarEntry{}, fmt.Errorf("%w: %s is in the archive %d times", ErrBadArchive, what, len(es))
	case es[0].typ != tar.TypeReg:
		return tarEntry{}, fmt.Errorf("%w: %s is not a regular file", ErrBadArchive, what)
	}
	return es[0].tarEntry, nil
}

// layer checks the layer entry name: a regular file, or a symbolic link
// to one next to it (docker save's legacy format links layers it saved
// twice), each the only entry of its name.
func (d dockerTar) layer(name string) error {
	what := "layer " + name
	es := d[path.Clean(name)]
	if len(es) == 1 && es[0].typ == tar.TypeSymlink {
		target := path.Join(path.Dir(path.Clean(name)), path.Clean(es[0].link))
		_, err := d.regular(target, what+" -> "+es[0].link)
		return err
	}
	_, err := d.regular(name, what)
	return err
}

// selectDockerEntry picks the manifest.json element whose RepoTags hold
// sel, or the first when sel is empty.
func selectDockerEntry(m []dockerManifestEntry, sel string) (dockerManifestEntry, error) {
	if len(m) == 0 {
		return dockerManifestEntry{}, fmt.Errorf("%w: empty manifest.json", ErrBadArchive)
	}
	if sel == "" {
		return m[0], nil
	}
	want := nameForms(sel)
	for _, e := range m {
		for _, t := range e.RepoTags {
			for form := range nameForms(t) {
				if want[form] {
					return e, nil
				}
			}
		}
	}
	return dockerManifestEntry{}, fmt.Errorf("no image named %q in the archive: %w", sel, store.ErrNotFound)
}

// nameForms returns the forms a name is written in: as given, normalized
// ("app:latest") and fully qualified ("docker.io/library/app:latest").
func nameForms(n string) map[string]bool {
	forms := map[string]bool{n: true}
	if full, err := store.NormalizeName(n); err == nil {
		forms[full] = true
		forms[fullName(full)] = true
	}
	return forms
}
