package store

import (
	"context"
	"fmt"
	"time"

	"github.com/gofrs/flock"
)

// lockRetry is how often Lock retries a held lock.
const lockRetry = 20 * time.Millisecond

// validLockName reports whether name can be a file under locks/: 1-128
// characters from [A-Za-z0-9._-], not starting with a dot.
func validLockName(name string) bool {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Lock takes the exclusive lock name (a file under locks/), shared by
// every process using this root, waiting until it is free or ctx is done.
// The lock is also exclusive between goroutines of one process. Call the
// returned unlock exactly once.
func (s *Store) Lock(ctx context.Context, name string) (unlock func() error, err error) {
	if !validLockName(name) {
		return nil, fmt.Errorf("locking: %w: %q", ErrInvalidName, name)
	}
	l := flock.New(s.Path("locks", name))
	ok, err := l.TryLockContext(ctx, lockRetry)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	if !ok {
		return nil, fmt.Errorf("locking %s: %w", name, ctx.Err())
	}
	return func() error {
		if err := l.Unlock(); err != nil {
			return fmt.Errorf("unlocking %s: %w", name, err)
		}
		return nil
	}, nil
}

// gcLock is the lock file of the store-wide collection lock.
const gcLock = "gc"

// Hold takes the store's collection lock shared, waiting while a garbage
// collection runs. Everything that writes blobs, snapshots or records
// nothing references yet (a build of either snapshotter, a pull, a load,
// a cache import) holds it until what it wrote is referenced (a name is
// tagged, a cache record is put), so the collector, which takes the lock
// exclusively (Collect), never deletes them. Holds are shared: any number
// of processes and goroutines hold it at once, and one may hold it more
// than once. Call release exactly once.
func (s *Store) Hold(ctx context.Context) (release func() error, err error) {
	l := flock.New(s.Path("locks", gcLock))
	ok, err := l.TryRLockContext(ctx, lockRetry)
	if err == nil && !ok {
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("holding the store: %w", err)
	}
	return l.Unlock, nil
}

// Collect takes the store's collection lock exclusively, waiting until no
// one holds it (see Hold); waiting, when not nil, is called once first if
// it has to wait. Only the garbage collector takes it; never call it while
// holding the lock shared.
func (s *Store) Collect(ctx context.Context, waiting func()) (release func() error, err error) {
	l := flock.New(s.Path("locks", gcLock))
	ok, err := l.TryLock()
	if err != nil {
		return nil, fmt.Errorf("locking the store: %w", err)
	}
	if !ok {
		if waiting != nil {
			waiting()
		}
		if ok, err = l.TryLockContext(ctx, lockRetry); err == nil && !ok {
			err = ctx.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("locking the store: %w", err)
		}
	}
	return l.Unlock, nil
}
