package copier

import (
	"io/fs"
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		spec string
		in   uint32
		dir  bool
		want uint32
	}{
		{"755", 0o600, false, 0o755},
		{"0644", 0o4777, true, 0o644},
		{"4755", 0o644, false, 0o4755},
		{"u=rwX,go=rX", 0o600, false, 0o644},
		{"u=rwX,go=rX", 0o700, false, 0o755},
		{"u=rwX,go=rX", 0o640, false, 0o644},
		{"u=rwX,go=rX", 0o010, false, 0o755}, // executable by someone
		{"u=rwX,go=rX", 0o700, true, 0o755},
		{"u=rwX,go=rX", 0o000, true, 0o755},
		{"+x", 0o644, false, 0o755},
		{"a+x", 0o600, true, 0o711},
		{"u+x", 0o644, false, 0o744},
		{"a-w", 0o666, false, 0o444},
		{"-w", 0o777, true, 0o555},
		{"go-rwx", 0o755, false, 0o700},
		{"o=", 0o777, false, 0o770},
		{"a=", 0o777, false, 0o000},
		{"u+s", 0o755, false, 0o4755},
		{"g+s", 0o755, true, 0o2755},
		{"o+s", 0o755, false, 0o755}, // no set-id bit for others
		{"+s", 0o755, false, 0o6755},
		{"+t", 0o755, true, 0o1755},
		{"o+t", 0o777, true, 0o1777},
		{"u+t", 0o755, true, 0o755}, // sticky belongs to others
		{"g=u", 0o640, false, 0o660},
		{"g=u", 0o750, true, 0o770},
		{"go=u-w", 0o755, false, 0o755},
		{"go=u-w", 0o644, false, 0o644},
		{"go=u-w", 0o700, false, 0o755},
		{"o=g", 0o750, false, 0o755},
		{"u=g", 0o070, false, 0o770},
		{"=rw,+X", 0o766, false, 0o666}, // no execute left: X adds none
		{"=rw,+X", 0o700, true, 0o777},
		{"u-x,+X", 0o744, false, 0o644},
		{"u+r-w+x", 0o200, false, 0o500},
		{"ug+w,o-r", 0o644, false, 0o660},
		{"a=rwx", 0o4755, false, 0o777},  // = clears set-id bits of files
		{"a=rwx", 0o2755, true, 0o2777},  // but keeps them on directories
		{"a=rwxs", 0o2755, true, 0o6777}, // unless s is written
		{"u-s", 0o4755, true, 0o755},     // s written: set-id cleared on a directory
		{"=", 0o1755, false, 0o000},      // no class means all, sticky included
		{"a+rX", 0o600, false, 0o644},
		{"a+rX", 0o700, true, 0o755},
	}
	for _, tt := range tests {
		c, err := parseMode(tt.spec)
		if err != nil {
			t.Errorf("parseMode(%q): %v", tt.spec, err)
			continue
		}
		if got := c(tt.in, tt.dir); got != tt.want {
			t.Errorf("%q on %04o (dir %v) = %04o, want %04o", tt.spec, tt.in, tt.dir, got, tt.want)
		}
	}
}

func TestParseModeErrors(t *testing.T) {
	for _, spec := range []string{
		"", "8", "17777", "0o755", "u", "ug", "x+r", "u+q", "u+rg", "g=ux", "u+x,", ",u+x", "u*x", "u+x g+w",
	} {
		_, err := ParseMode(spec)
		if err == nil {
			t.Errorf("ParseMode(%q): no error", spec)
			continue
		}
		if !strings.Contains(err.Error(), "invalid --chmod="+spec) {
			t.Errorf("ParseMode(%q): error %q does not quote the value", spec, err)
		}
	}
}

func TestParseModeFileMode(t *testing.T) {
	f, err := ParseMode("u+s,g=u,+t")
	if err != nil {
		t.Fatal(err)
	}
	got := f(fs.ModeDir|0o704, true)
	if want := fs.ModeDir | fs.ModeSetuid | fs.ModeSticky | 0o774; got != want {
		t.Errorf("got %v, want %v", got, want)
	}
	f, _ = ParseMode("a-s")
	if got, want := f(fs.ModeSetuid|fs.ModeSetgid|0o755, false), fs.FileMode(0o755); got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestParseChmod(t *testing.T) {
	for in, want := range map[string]uint32{"755": 0o755, "0644": 0o644, "4755": 0o4755} {
		if got, err := ParseChmod(in); err != nil || got != want {
			t.Errorf("ParseChmod(%q) = %o, %v", in, got, err)
		}
	}
	for _, in := range []string{"u+x", "8", "17777", ""} {
		if _, err := ParseChmod(in); err == nil {
			t.Errorf("ParseChmod(%q): no error", in)
		}
	}
}
