// Package builder provides lading's build API: Build takes a Request (a
// context directory or archive, a recipe, tags, outputs, settings) and
// returns the built image, saved in the store, tagged and written to each
// output.
//
// A program embedding lading calls Init first in main (the binary is
// also the containers' init process), then:
//
//	res, err := builder.Build(ctx, builder.Request{
//		ContextDir: dir,                              // recipe: Recipe, Dockerfile or Containerfile in dir
//		Tags:       []string{"app:1"},                // names in the store
//		Outputs:    []builder.Output{{Type: "oci", Dest: "app.tar"}},
//		CacheTo:    []string{"type=local,dest=/cache"},
//	})
//	// res.Image (a go-containerregistry v1.Image), res.Digest
//
// Build reads the recipe, opens the store and the snapshotter (overlay,
// falling back to native copies) with its own build cache, opens the
// shared caches, then runs the plan: Run walks the stages the target
// needs, applies every filesystem step (COPY, ADD, WORKDIR, RUN) in a
// copy-on-write snapshot committed as a layer, applies metadata steps
// (ENV, CMD, LABEL, ...) to the image config, and saves the image. Only
// then does Build tag it and hand it to the exporters of its outputs (one
// image.Exporter each: OCI or docker archive, root filesystem, registry
// push) and export the shared cache. Run is the engine alone, for callers
// that parse and open the store themselves.
//
// ParseOutput, ParseSecrets, ParseSSH, ParseContexts, ParseBuildArgs,
// ParseSize and EpochFromEnv read the option syntax of `lading build`.
package builder
