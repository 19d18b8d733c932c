package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// memoryTarget is the soft memory limit lading sets unless GOMEMLIMIT is
// given. With the default GOGC alone the heap grows to twice its live
// size before a collection; a build that copies and compresses many
// files keeps ~20 MiB live and so peaked near 75 MiB of RSS. Under the
// limit the collector runs earlier instead, which costs little while
// the live heap is well below it. The process's RSS is the Go memory plus
// ~10 MiB (program text, stacks): 36 MiB kept the one-file rebuild of
// the bench at 45.7-47.5 MiB of RSS (40 MiB: 47.4-48.9, once 50.2).
const memoryTarget = 36 << 20

// firstGCPercent is GOGC until the first collection. With the default of
// 100 that comes at 4 MiB and is followed by one every few MiB while the
// heap grows: a no-op rebuild of 10,000 files collected six times in 130
// ms. With 400 the first comes at 16 MiB; afterwards GOGC is 100 again,
// so a long build's peak does not change.
const firstGCPercent = 400

// softMemoryLimit sets memoryTarget and lifts it again for good once the
// live heap passes three quarters of it: a build that needs more memory
// must not spend its time collecting.
func softMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(memoryTarget)
	armLiveHeapCheck()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(firstGCPercent)
		runtime.SetFinalizer(new([16]byte), func(*[16]byte) { debug.SetGCPercent(100) })
	}
}

// armLiveHeapCheck runs its check after the next collection (the
// finalizer of an object nothing references) and re-arms itself.
func armLiveHeapCheck() {
	runtime.SetFinalizer(new([16]byte), func(*[16]byte) {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 && s[0].Value.Uint64() > memoryTarget/4*3 {
			debug.SetMemoryLimit(math.MaxInt64)
			return
		}
		armLiveHeapCheck()
	})
}
