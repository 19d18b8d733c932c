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
