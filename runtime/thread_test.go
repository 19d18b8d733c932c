package runtime

import (
	"fmt"
	goruntime "runtime"
	"sync"
	"testing"
)

// churnThreads keeps ending OS threads, as a goroutine that exits while
// locked to its thread does (snapshot's overlay mount fallback), until
// the returned function is called.
func churnThreads() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				exited := make(chan struct{})
				go func() {
					defer close(exited)
					goruntime.LockOSThread()
				}()
				<-exited
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// TestThreadDeathSparesContainers runs containers while other goroutines
// end their locked threads: no container may get its parent-death
// signal because the thread that forked its init went away.
func TestThreadDeathSparesContainers(t *testing.T) {
	needRoot(t)
	const workers, runs = 4, 6
	roots := make([]string, workers)
	for i := range roots {
		roots[i] = newRootfs(t)
	}
	stop := churnThreads()
	defer stop()
	errs := make(chan error, workers*runs)
	for _, root := range roots {
		go func() {
			for i := range runs {
				_, errOut, err := sh(t, Spec{Rootfs: root},
					`i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo done`)
				if err != nil {
					err = fmt.Errorf("run %d: %w (%s)", i, err, errOut)
				}
				errs <- err
			}
		}()
	}
	failed := 0
	for range workers * runs {
		if err := <-errs; err != nil {
			failed++
			t.Log(err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d containers failed", failed, workers*runs)
	}
}
