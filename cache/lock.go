package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockRetry is how often a held lock is retried.
const lockRetry = 10 * time.Millisecond

// Lock takes the exclusive lock of key, shared by every process using this
// cache and by goroutines of one process, waiting until it is free or ctx
// is done. A build takes it around computing a missed step so that two
// builds do not run the same step twice: the second waits, then Gets the
// record the first one Put. Call unlock exactly once.
func (c *Cache) Lock(ctx context.Context, key string) (unlock func() error, err error) {
	h, err := keyHex(key)
	if err != nil {
		return nil, fmt.Errorf("locking cache key: %w", err)
	}
	unlock, err = flock(ctx, c.path("locks", h))
	if err != nil {
		return nil, fmt.Errorf("locking cache key %s: %w", key, err)
	}
	return unlock, nil
}

// flock locks the file path (created when missing) exclusively, polling
// until it is free or ctx is done. Lock files may be
// removed by Prune while it holds them, so after locking it checks that
// the locked file is still the one at path and starts over if not.
func flock(ctx context.Context, path string) (func() error, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := waitLock(ctx, f); err != nil {
			f.Close()
			return nil, err
		}
		same, err := samePath(f, path)
		if err != nil {
			f.Close()
			return nil, err
		}
		if !same {
			f.Close()
			continue
		}
		return func() error {
			// Closing the file releases the lock.
			if err := f.Close(); err != nil {
				return fmt.Errorf("unlocking %s: %w", path, err)
			}
			return nil
		}, nil
	}
}

// waitLock polls an exclusive flock(2) on f until it succeeds or ctx is done.
func waitLock(ctx context.Context, f *os.File) error {
	t := time.NewTicker(lockRetry)
	defer t.Stop()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// tryLock takes an exclusive lock on path without waiting; ok is false when
// someone else holds it or it does not exist.
func tryLock(path string) (unlock func(), ok bool) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, false
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// samePath reports whether the open file f is still the file at path.
func samePath(f *os.File, path string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		return false, err
	}
	if err := unix.Stat(path, &b); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}
