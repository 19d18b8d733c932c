package builder

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// The build is a step graph kept simple: every needed stage runs in its
// own goroutine from the start, its steps in order, and each step waits
// only for what it reads. A FROM of another stage, a COPY --from and a
// RUN --mount from= wait on that stage's future; a base image waits for
// its pull; nothing else waits. --jobs bounds the RUN steps that execute
// at once (runSlot), so pulls, context hashing, copies and layer
// compression overlap with them. Futures only point at earlier stages
// (the parser orders them), and no goroutine holds a RUN slot while it
// waits on a future, so the graph cannot deadlock.

// future is the result of a stage, ready when done is closed.
type future struct {
	done chan struct{}
	res  *stageResult
	err  error
}

// stage waits for stage i and returns its result.
func (b *build) stage(ctx context.Context, i int) (*stageResult, error) {
	if i < 0 || i >= len(b.stages) || b.stages[i] == nil {
		return nil, fmt.Errorf("stage %d is not part of this build", i)
	}
	f := b.stages[i]
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, fmt.Errorf("a stage this one needs failed: %w", context.Canceled)
	}
	return f.res, nil
}

// runSlot waits for one of the --jobs slots of RUN steps and returns its
// release.
func (b *build) runSlot(ctx context.Context) (func(), error) {
	select {
	case b.runs <- struct{}{}:
		return func() { <-b.runs }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// initStages makes a future for every needed stage.
func (b *build) initStages() {
	for i := range b.plan.Stages {
		if b.plan.Needed[i] {
			b.stages[i] = &future{done: make(chan struct{})}
		}
	}
}

// runStages builds every needed stage this build owns, all of them at
// once, each step after its own inputs. The first failure cancels the rest and is the
// error returned, rather than the cancellations it caused.
func (b *build) runStages(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	b.cancel = cancel
	b.prefetch(ctx)
	var wg sync.WaitGroup
	for i, st := range b.plan.Stages {
		f := b.stages[i]
		if f == nil || b.foreign[i] {
			continue // not needed, or built by another target's build
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.res, f.err = b.runStage(ctx, st)
			if f.err != nil {
				b.fail(f.err)
			}
			close(f.done)
		}()
	}
	wg.Wait()
	b.pending.Wait()
	err := b.failed.get()
	if err != nil && parent.Err() != nil {
		return parent.Err()
	}
	return err
}

// fail records the build's error and cancels the rest of it.
func (b *build) fail(err error) {
	b.failed.set(err)
	b.cancel()
}

// firstError keeps the first error of a group of goroutines, preferring
// a real failure over the cancellations it caused.
type firstError struct {
	mu       sync.Mutex
	err      error
	canceled bool
}

func (e *firstError) set(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	isCancel := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	if e.err == nil || (e.canceled && !isCancel) {
		e.err, e.canceled = err, isCancel
	}
}

func (e *firstError) get() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}
