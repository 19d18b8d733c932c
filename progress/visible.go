package progress

import (
	"strings"
	"unicode/utf8"
)

// visible makes s safe to print on a terminal as text: every control
// character but tab is shown in caret notation, as cat -v does (ESC as
// "^[", DEL as "^?", the C1 control U+009B as "M-^["), and bytes that are
// not UTF-8 as U+FFFD. A step's output then cannot move the cursor, set
// the title, write the clipboard (OSC 52) or make the terminal answer into
// its input (ESC[6n).
func visible(s string) string {
	if !strings.ContainsFunc(s, needsEscape) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r >= 0x80 && r <= 0x9f:
			b.WriteString("M-^")
			b.WriteByte(byte(r-0x80) + '@')
		case r == 0x7f:
			b.WriteString("^?")
		case r < ' ' && r != '\t':
			b.WriteByte('^')
			b.WriteByte(byte(r) + '@')
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether visible changes r.
func needsEscape(r rune) bool {
	return (r < ' ' && r != '\t') || (r >= 0x7f && r <= 0x9f) || r == utf8.RuneError
}
