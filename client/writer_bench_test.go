package client_test

import (
	"context"
	"testing"

	"indelible.dev/client"
)

// BenchmarkLog measures what one Log call costs the application: filling in
// the id and queueing (the batches go to a fake server in the background).
func BenchmarkLog(b *testing.B) {
	srv := exampleServer()
	defer srv.Close()
	c, _ := client.New(srv.URL, "t", client.WithQueueSize(100000), client.WithBatch(1000, 0))
	ctx := context.Background()
	ev := client.Event{Action: "document.read", Actor: &client.Actor{ID: "alice"}, Resource: &client.Resource{ID: "doc-17"}}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Log(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := c.Close(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLogWithID is Log of an event that has its id already.
func BenchmarkLogWithID(b *testing.B) {
	srv := exampleServer()
	defer srv.Close()
	c, _ := client.New(srv.URL, "t", client.WithQueueSize(100000), client.WithBatch(1000, 0))
	ctx := context.Background()
	ev := client.Event{ID: "fixed", Action: "document.read"}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Log(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close(ctx)
}

// BenchmarkLogSpool is Log with a spool: each event is also written to a
// file and fsynced before Log returns (one caller: an fsync per Log).
func BenchmarkLogSpool(b *testing.B) {
	srv := exampleServer()
	defer srv.Close()
	c, _ := client.New(srv.URL, "t", client.WithQueueSize(100000), client.WithBatch(1000, 0), client.WithSpool(b.TempDir()))
	ctx := context.Background()
	ev := client.Event{Action: "document.read", Actor: &client.Actor{ID: "alice"}, Resource: &client.Resource{ID: "doc-17"}}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Log(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close(ctx)
}

// BenchmarkLogSpoolParallel is Log with a spool from many goroutines at once:
// they share the spool's fsyncs (group commit).
func BenchmarkLogSpoolParallel(b *testing.B) {
	srv := exampleServer()
	defer srv.Close()
	c, _ := client.New(srv.URL, "t", client.WithQueueSize(100000), client.WithBatch(1000, 0), client.WithSpool(b.TempDir()))
	ctx := context.Background()
	ev := client.Event{Action: "document.read", Actor: &client.Actor{ID: "alice"}, Resource: &client.Resource{ID: "doc-17"}}
	b.ReportAllocs()
	b.SetParallelism(8) // 8 x GOMAXPROCS goroutines
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Log(ctx, ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	c.Close(ctx)
}
