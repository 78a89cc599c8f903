package main

import "indelible.dev/cmd/indelible/internal/gctune"

// serveGCPercent is serve's GC target (gctune.ServePercent says why).
const serveGCPercent = gctune.ServePercent

// tuneGC sets serveGCPercent unless the operator chose with GOGC.
func tuneGC() { gctune.Tune() }
