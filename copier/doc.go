// Package copier provides Docker's COPY and ADD semantics: it selects
// sources from a directory (the build context, or another stage's root
// filesystem) and writes them into a destination root filesystem.
//
// Reading is confined to Request.SrcRoot and writing to Request.DestRoot:
// sources named directly (or matched by a wildcard) that are symlinks are
// followed inside SrcRoot, symlinks met while walking a source directory are
// copied as symlinks, and every destination path is resolved inside DestRoot
// (symlinks in the image are interpreted as if DestRoot were "/"), with the
// last component never followed, so an existing symlink is replaced rather
// than written through.
//
// A copy runs in two steps, which callers may also use separately:
//
//	srcs, err := copier.Select(req) // what would be copied (for cache keys)
//	err = copier.Copy(ctx, req)     // Select, then write into DestRoot
//
// Copy follows BuildKit where Docker's builders differ: a directory source
// copies its contents; a file goes to dest/basename when dest ends in "/"
// or is an existing directory; directories created for the destination path
// are mode 0755 and owned by the --chown user (root without one); files keep
// their mode, mtime, extended attributes and hard links; with KeepOwner
// (COPY --from) files keep their owner, otherwise they belong to the
// --chown user or root. With Add, local tar archives (detected by content,
// optionally compressed with gzip, bzip2, xz or zstd) are extracted inside
// the destination directory, and http(s) URLs are downloaded, never
// extracted.
package copier
