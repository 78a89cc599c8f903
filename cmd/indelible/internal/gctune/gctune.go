// Package gctune holds the garbage collector's setting of indelible serve,
// so that the benchmarks which run the server in process
// (cmd/indelible/internal/loadgen) measure it with the setting it ships
// with.
package gctune

import (
	"os"
	"runtime/debug"
)

// ServePercent is the garbage collector's target for serve: the next
// collection starts when the heap has grown by this percentage of the live
// heap. The server's live heap is small (about 5 MiB: pebble keeps its
// memtables and block cache outside the Go heap), so Go's default of 100 ran
// a collection three to eight times a second under load, and each one stops
// the world: on a busy machine the stop took up to 423 ms (GODEBUG=gctrace=1,
// BENCHMARKS.md "Performance wave (issue 13)"). At 400 the heap peaks at
// about 30 MiB instead of 12 and collections are five times rarer.
const ServePercent = 400

// Tune sets ServePercent unless the operator chose with GOGC.
func Tune() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(ServePercent)
	}
}
