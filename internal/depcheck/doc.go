// Package depcheck holds the test that keeps lading's layering honest:
// every package imports only the lading packages below it (see
// DESIGN.md), and the CLI reaches the library through builder and the
// store and image facades alone. It has no code of its own.
package depcheck
