package parser

import (
	"bufio"
	"bytes"
	"io"
	"unicode/utf8"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// MaxRecipeSize is the largest recipe Parse accepts, in bytes.
const MaxRecipeSize = 10 << 20

// maxLineSize is the longest physical line BuildKit's parser can scan.
const maxLineSize = bufio.MaxScanTokenSize - 1

// readRecipe reads at most MaxRecipeSize bytes of recipe text.
func readRecipe(r io.Reader, file string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRecipeSize+1))
	if err != nil {
		return nil, errorf(Location{File: file}, "reading recipe: %w", err)
	}
	if len(data) > MaxRecipeSize {
		return nil, errorf(Location{File: file}, "recipe is larger than %d MiB", MaxRecipeSize>>20)
	}
	return data, nil
}

// checkText rejects binary data: NUL bytes and invalid UTF-8, reported at
// the first offending line.
func checkText(data []byte, file string) error {
	line := 1
	for rest := data; len(rest) > 0; line++ {
		text := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			text, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if bytes.IndexByte(text, 0) >= 0 {
			return errorf(Location{File: file, Line: line}, "recipe contains binary data (NUL byte)")
		}
		if !utf8.Valid(text) {
			return errorf(Location{File: file, Line: line}, "recipe is not valid UTF-8 text")
		}
		if len(text) > maxLineSize {
			return errorf(Location{File: file, Line: line}, "line is longer than %d bytes", maxLineSize)
		}
	}
	return nil
}

// checkDirectives validates the parser directives at the top of a recipe
// ("# escape=", "# syntax=", "# check=") with BuildKit's own directive
// parser, so that errors carry the right line (BuildKit's parser reports
// them one line early).
func checkDirectives(data []byte, file string) error {
	var dp parser.DirectiveParser
	sc := bufio.NewScanner(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimLeft(bytes.TrimRight(sc.Bytes(), "\r\n"), " \t\r\n\v\f")
		d, err := dp.ParseLine(text)
		if err != nil {
			return errorAt(file, line, err)
		}
		if d == nil {
			return nil // directives end at the first other line
		}
		if d.Name == "escape" && d.Value != "`" && d.Value != `\` {
			return errorf(Location{File: file, Line: line}, "invalid escape token %q: must be ` or \\", d.Value)
		}
	}
	return nil // a scanner error (a huge line) is reported by the parser
}
