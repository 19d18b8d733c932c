// Package image moves OCI images in and out of lading's store with
// go-containerregistry (ggcr): layers written to the store while their
// digests are computed (WriteLayer), images saved to and loaded from the
// store (Save, Load, Resolve), archives imported (ImportArchive), images
// pulled from and pushed to registries (Pull, Push, RemoteOptions), and
// outputs as small sinks (Exporter: OCI archive, docker archive, rootfs
// directory).
//
// Names: images built or tagged locally keep the name as written
// ("app:1.0"); Pull tags the canonical registry form
// ("index.docker.io/library/debian:12" for "debian:12", see
// CanonicalName). Resolve and LookupName try the name as written, then
// match canonical forms, so either spelling finds either kind of image.
//
// Layers are hashed exactly once, while they are written: the diffID from
// the tar stream and the digest from the gzip stream in one pass, then
// handed to ggcr as known values (the lesson of ggcr issues #413 and
// #867). Images loaded from the store are backed by blob files, so
// exporters copy files instead of recompressing or rehashing.
//
// Lifecycle of a built image:
//
//	layer, err := image.WriteLayer(ctx, s, tarStream)     // blob in the store
//	img, err := mutate.Append(base, mutate.Addendum{Layer: layer})
//	img, err = mutate.ConfigFile(img, cfg)
//	dgst, err := image.Save(ctx, s, img)                  // config + manifest
//	err = s.Tag("app:1.0", dgst.String())
//	img, err = image.Resolve(s, "app:1.0")
//	err = image.NewOCIArchive("app.tar", []string{"app:1.0"}).Export(ctx, img)
package image
