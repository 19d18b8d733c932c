package parser

import (
	"errors"
	"fmt"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// errorAt returns an *Error at file:line whose message is err's message.
// An err that already is an *Error is returned unchanged.
func errorAt(file string, line int, err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Loc: Location{File: file, Line: line}, Msg: err.Error(), Err: err}
}

// errorf returns an *Error at loc; a %w verb in format makes the wrapped
// error its cause.
func errorf(loc Location, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Loc: loc, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// buildkitLine returns the first line number BuildKit attached to err, or 0.
func buildkitLine(err error) int {
	var le *parser.LocationError
	if !errors.As(err, &le) {
		return 0
	}
	for _, ranges := range le.Locations {
		for _, r := range ranges {
			if r.Start.Line > 0 {
				return r.Start.Line
			}
		}
	}
	return 0
}

// fromBuildkit turns an error of BuildKit's parser into an *Error, using
// the line BuildKit gives or fallback when it gives none.
func fromBuildkit(file string, fallback int, err error) *Error {
	line := buildkitLine(err)
	if line == 0 {
		line = fallback
	}
	return errorAt(file, line, err)
}
