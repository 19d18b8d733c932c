// Package atomicfile replaces files so that a process killed at any
// moment leaves either the old content or the new, never a mix: the data
// goes to a temporary file beside the target (or in a given directory on
// the same filesystem), is fsynced, renamed over the target, and the
// directory is fsynced so the rename is durable.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, with permissions perm.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteIn(filepath.Dir(path), path, data, perm)
}

// WriteIn is Write with the temporary file in tmpDir, which must be on
// path's filesystem.
func WriteIn(tmpDir, path string, data []byte, perm os.FileMode) error {
	return write(tmpDir, path, data, perm, true)
}

// WriteUnsynced is Write without the fsyncs: a killed process still
// leaves the old content or the new, but a power loss may leave neither.
// For files a later syncfs makes durable, or that are worthless after a
// crash.
func WriteUnsynced(path string, data []byte, perm os.FileMode) error {
	return write(filepath.Dir(path), path, data, perm, false)
}

func write(tmpDir, path string, data []byte, perm os.FileMode, durable bool) (err error) {
	f, err := os.CreateTemp(tmpDir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if durable {
		if err = f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", path, err)
		}
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if !durable {
		return nil
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory, making renames and removals in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
