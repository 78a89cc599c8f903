package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"indelible.dev/client"
)

// exampleServer stands in for an Indelible server in the examples: it
// answers appends with indexes from 0 and receipts with a placeholder.
func exampleServer() *httptest.Server {
	var next atomic.Int64
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/receipt") {
			fmt.Fprintln(w, "c2sp.org/tlog-proof@v1 (a placeholder)")
			return
		}
		var evs []client.Event
		json.NewDecoder(r.Body).Decode(&evs)
		out := make([]client.Appended, len(evs))
		for i := range evs {
			out[i].Index = next.Add(1) - 1
		}
		json.NewEncoder(w).Encode(map[string]any{"events": out})
	}))
}

func ExampleNew() {
	srv := exampleServer()
	defer srv.Close()
	c, err := client.New(srv.URL, "the-append-token",
		client.WithBatch(200, 20*time.Millisecond), // up to 200 events a request, after at most 20 ms
		client.WithQueueSize(50000),
		client.WithBlockOnFull(2*time.Second), // a full queue blocks Log up to 2 s
		client.WithRetry(0, time.Minute),      // retry a batch for up to a minute
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(context.Background())
	fmt.Println("ready")
	// Output: ready
}

func ExampleClient_Log() {
	srv := exampleServer()
	defer srv.Close()
	c, _ := client.New(srv.URL, "the-append-token")
	ctx := context.Background()
	err := c.Log(ctx, client.Event{
		Action:   "document.read",
		Actor:    &client.Actor{ID: "alice"},
		Resource: &client.Resource{ID: "doc-17", Type: "document"},
	})
	fmt.Println("queued:", err)
	// Close returns once everything queued is durable.
	fmt.Println("closed:", c.Close(ctx))
	// Output:
	// queued: <nil>
	// closed: <nil>
}

func ExampleClient_LogSync() {
	srv := exampleServer()
	defer srv.Close()
	c, _ := client.New(srv.URL, "the-append-token")
	defer c.Close(context.Background())
	lg, err := c.LogSync(context.Background(), client.Event{ID: "approval-42", Action: "payment.approved"})
	fmt.Println(lg.Index, lg.ID, err)
	// Output: 0 approval-42 <nil>
}

func ExampleLogged_Receipt() {
	srv := exampleServer()
	defer srv.Close()
	c, _ := client.New(srv.URL, "the-append-token")
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lg, err := c.LogSync(ctx, client.Event{Action: "payment.approved"})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Waits for a checkpoint covering the event; verify the receipt with
	// indelible.dev/receipt or `indelible receipt verify`.
	r, err := lg.Receipt(ctx)
	fmt.Print(string(r), err, "\n")
	// Output:
	// c2sp.org/tlog-proof@v1 (a placeholder)
	// <nil>
}

func ExampleClient_Flush() {
	srv := exampleServer()
	defer srv.Close()
	c, _ := client.New(srv.URL, "the-append-token")
	defer c.Close(context.Background())
	ctx := context.Background()
	for i := range 3 {
		c.Log(ctx, client.Event{Action: "job.step", Metadata: json.RawMessage(fmt.Sprintf(`{"step":%d}`, i))})
	}
	// Returns once the three are durable (or an *UndeliveredError).
	fmt.Println(c.Flush(ctx), c.Stored())
	// Output: <nil> 3
}

func ExampleClient_Close() {
	srv := exampleServer()
	defer srv.Close()
	c, _ := client.New(srv.URL, "the-append-token")
	c.Log(context.Background(), client.Event{Action: "service.stopped"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		// An *UndeliveredError lists the events not known to be stored,
		// with their ids: sending them again later cannot duplicate them.
		fmt.Println(err)
		return
	}
	fmt.Println("all durable")
	// Output: all durable
}

func ExampleNewSlogHandler() {
	srv := exampleServer()
	defer srv.Close()
	c, _ := client.New(srv.URL, "the-append-token")
	log := slog.New(client.NewSlogHandler(c, &client.SlogOptions{Source: "billing"}))
	log.Info("invoice.approved", "actor", "alice", "resource", "inv-9", "amount", 120)
	fmt.Println(c.Close(context.Background()), c.Stored())
	// Output: <nil> 1
}
