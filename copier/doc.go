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
// --chown user or root; --chmod, octal or symbolic (ParseMode), is
// computed from each source mode. With Add, local tar archives (detected
// by content, optionally compressed with gzip, bzip2, xz or zstd) are
// extracted inside the destination directory, and http(s) URLs are
// downloaded, extracted only with --unpack=true (Request.Unpack).
//
// BuildKit's newer flags are Request fields too: Exclude (--exclude,
// .dockerignore patterns relative to each match), Parents (--parents,
// with an optional "/./" pivot) and, for ADD, Git sources (IsGitURL):
// "https://host/repo.git#ref:subdir" is cloned with the git command into
// a temporary directory (no hooks, no system or global configuration,
// no file:// or ext:: remotes), the subdirectory is resolved inside the
// checkout, and the contents are copied without .git (unless
// KeepGitDir), with Git's modes and the commit time as mtimes. GitCommit
// resolves a ref to a commit without cloning, for cache keys.
package copier
