package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	tests := []struct{ in, want string }{
		{`/plain`, `/plain`},
		{`/a\040b\134c`, `/a b\c`},
		{`/end\040`, `/end `},
		{`/short\04`, `/short\04`},
		{`/bad\089`, `/bad\089`},
		{`/over\777`, `/over\777`},
	}
	for _, tt := range tests {
		if got := Unescape(tt.in); got != tt.want {
			t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
