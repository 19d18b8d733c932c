package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"slices"
	"strings"
	"unicode/utf8"
)

// keyVersion is mixed into every key; bump it when the encoding or the
// meaning of a field changes so old records are simply never hit again.
const keyVersion = 1

// Field names the builder uses and Explain understands. Other names are
// allowed and are explained generically ("user changed: ...").
const (
	FieldBase        = "base"        // stage base: the base image's digest
	FieldKind        = "kind"        // instruction kind: "RUN", "COPY", ...
	FieldInstruction = "instruction" // canonical instruction text
	FieldArg         = "arg"         // ARG values read: "NAME=value" joined by "\x00"
	FieldEnv         = "env"         // environment: "NAME=value" joined by "\x00"
	FieldFiles       = "files"       // COPY/ADD sources (AddFiles)
)

// FileDigest is one source file of a COPY or ADD as it lands: Path is its
// path relative to the copy root and Digest covers its type, permission
// bits, owner, and content (regular files) or target (symlinks), but never
// its timestamps.
type FileDigest struct {
	Path   string `json:"p"`
	Digest string `json:"d"`
}

// Input is one field of a key as recorded for explanations: either a
// value (Add) or a list of files (AddFiles). In a record file the file
// lists are stored packed after the JSON, which keeps the record of a
// COPY of a large context quick to read.
type Input struct {
	Field   string
	Value   string
	IsFiles bool
	Files   []FileDigest
}

// inputJSON is how an Input is stored in JSON: a value that is not valid
// UTF-8 (which JSON strings would mangle) goes base64 in "vb".
type inputJSON struct {
	Field   string `json:"f"`
	Value   string `json:"v,omitempty"`
	Bytes   []byte `json:"vb,omitempty"`
	IsFiles bool   `json:"l,omitempty"`
}

// MarshalJSON implements json.Marshaler; Files are stored elsewhere.
func (in Input) MarshalJSON() ([]byte, error) {
	j := inputJSON{Field: in.Field, Value: in.Value, IsFiles: in.IsFiles}
	if !utf8.ValidString(in.Value) {
		j.Value, j.Bytes = "", []byte(in.Value)
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler.
func (in *Input) UnmarshalJSON(b []byte) error {
	var j inputJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*in = Input{Field: j.Field, Value: j.Value, IsFiles: j.IsFiles}
	if j.Bytes != nil {
		in.Value = string(j.Bytes)
	}
	return nil
}

// packFiles encodes files as: uvarint path length, path, then 1 and the
// 32 raw bytes of a "sha256:<hex>" digest, or 0, uvarint length and the
// digest string.
func packFiles(files []FileDigest) []byte {
	if len(files) == 0 {
		return nil
	}
	buf := make([]byte, 0, len(files)*(40+sha256.Size))
	for _, f := range files {
		buf = binary.AppendUvarint(buf, uint64(len(f.Path)))
		buf = append(buf, f.Path...)
		if raw, err := hex.DecodeString(strings.TrimPrefix(f.Digest, "sha256:")); err == nil && len(raw) == sha256.Size &&
			strings.HasPrefix(f.Digest, "sha256:") && f.Digest == "sha256:"+hex.EncodeToString(raw) {
			buf = append(buf, 1)
			buf = append(buf, raw...)
			continue
		}
		buf = append(buf, 0)
		buf = binary.AppendUvarint(buf, uint64(len(f.Digest)))
		buf = append(buf, f.Digest...)
	}
	return buf
}

var errBadFiles = errors.New("bad packed file list")

// unpackFiles decodes what packFiles wrote.
func unpackFiles(b []byte) ([]FileDigest, error) {
	var out []FileDigest
	next := func() (string, error) {
		n, l := binary.Uvarint(b)
		if l <= 0 || n > uint64(len(b)-l) {
			return "", errBadFiles
		}
		s := string(b[l : l+int(n)])
		b = b[l+int(n):]
		return s, nil
	}
	for len(b) > 0 {
		p, err := next()
		if err != nil || len(b) == 0 {
			return nil, errBadFiles
		}
		tag := b[0]
		b = b[1:]
		var d string
		switch {
		case tag == 1 && len(b) >= sha256.Size:
			var hx [7 + 2*sha256.Size]byte
			copy(hx[:], "sha256:")
			hex.Encode(hx[7:], b[:sha256.Size])
			d, b = string(hx[:]), b[sha256.Size:]
		case tag == 0:
			if d, err = next(); err != nil {
				return nil, err
			}
		default:
			return nil, errBadFiles
		}
		out = append(out, FileDigest{Path: p, Digest: d})
	}
	return out, nil
}

// Inputs are the fields of a key in the order they were added.
type Inputs []Input

// KeyBuilder computes a cache key: the sha256 of a versioned,
// length-prefixed encoding of the parent key and each field, so that no two
// different field sequences encode to the same bytes. It also records the
// fields for Explain. The zero value is not usable; call NewKey.
type KeyBuilder struct {
	h      hash.Hash
	buf    []byte // encoded bytes not yet written to h
	inputs Inputs
}

// flushAt is how many encoded bytes KeyBuilder gathers before hashing.
const flushAt = 32 << 10

// NewKey starts the key of a step whose previous step has key parent (""
// for a stage's base).
func NewKey(parent string) *KeyBuilder {
	k := &KeyBuilder{h: sha256.New(), buf: make([]byte, 0, 256)}
	k.str("lading-cache-key")
	k.buf = binary.AppendUvarint(k.buf, keyVersion)
	k.str(parent)
	return k
}

func (k *KeyBuilder) str(s string) {
	k.buf = binary.AppendUvarint(k.buf, uint64(len(s)))
	k.buf = append(k.buf, s...)
	if len(k.buf) >= flushAt {
		k.flush()
	}
}

func (k *KeyBuilder) flush() {
	k.h.Write(k.buf)
	k.buf = k.buf[:0]
}

// Add adds a field with a value, e.g. Add(FieldInstruction, "RUN make").
func (k *KeyBuilder) Add(field, value string) *KeyBuilder {
	k.buf = append(k.buf, 'v')
	k.str(field)
	k.str(value)
	k.inputs = append(k.inputs, Input{Field: field, Value: value})
	return k
}

// AddFiles adds a field holding per-file digests. The order of files does
// not matter: they are sorted by Path (stably, so later duplicates of a
// path stay later).
func (k *KeyBuilder) AddFiles(field string, files []FileDigest) *KeyBuilder {
	sorted := sortFiles(files)
	k.buf = append(k.buf, 'f')
	k.str(field)
	k.buf = binary.AppendUvarint(k.buf, uint64(len(sorted)))
	for _, f := range sorted {
		k.str(f.Path)
		k.str(f.Digest)
	}
	k.inputs = append(k.inputs, Input{Field: field, IsFiles: true, Files: sorted})
	return k
}

// Sum returns the key, "sha256:<hex>". More fields may be added afterwards.
func (k *KeyBuilder) Sum() string {
	k.flush()
	return "sha256:" + hex.EncodeToString(k.h.Sum(nil))
}

// Inputs returns the fields added so far, for Record.Inputs.
func (k *KeyBuilder) Inputs() Inputs {
	return append(Inputs(nil), k.inputs...)
}

// sortFiles returns files sorted by Path, or files itself when already
// sorted.
func sortFiles(files []FileDigest) []FileDigest {
	if slices.IsSortedFunc(files, compareFiles) {
		return files
	}
	out := slices.Clone(files)
	slices.SortStableFunc(out, compareFiles)
	return out
}

func compareFiles(a, b FileDigest) int { return strings.Compare(a.Path, b.Path) }
