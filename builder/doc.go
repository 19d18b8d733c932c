// Package builder runs a parsed recipe (a parser.Plan): it walks the stages
// a target needs, applies every filesystem step (COPY, ADD, RUN, WORKDIR) in
// a copy-on-write snapshot and commits it as a layer, applies metadata steps
// (ENV, CMD, LABEL, ...) to the image config, and returns the resulting
// image. Where the image goes (store names, tarballs, a registry) is the
// caller's business.
package builder
