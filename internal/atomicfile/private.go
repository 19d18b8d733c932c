package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Private makes dir (created when missing, with its parents) readable by
// its owner only: mode 0700. When dir existed with a looser mode (a root
// made by an older version), the regular files directly in each of the
// subdirectories subs (relative to dir; "." for dir itself) are made
// 0600 too. The walk happens once: afterwards dir is 0700 and Private
// costs one stat.
func Private(dir string, subs ...string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if info.Mode().Perm() == 0o700 {
		return nil
	}
	for _, sub := range subs {
		if err := privateFiles(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	// Last: an interrupted walk is done again by the next call.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("making %s private: %w", dir, err)
	}
	return nil
}

// privateFiles takes group and other permissions off the regular files
// in dir; a missing dir has none.
func privateFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("making %s private: %w", dir, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(filepath.Join(dir, e.Name()), perm&0o700); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("making %s private: %w", dir, err)
			}
		}
	}
	return nil
}
