package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"indelible.dev/event"
)

// TestStreamResume streams while four writers append, drops the stream at
// random points and resumes after the last index seen: the concatenation
// is every matching event, in index order, with no gap and no duplicate.
func TestStreamResume(t *testing.T) {
	e := newEnv(t, nil)
	e.append("w", event.Event{Action: "before", Source: "s"}, event.Event{Action: "before", Source: "other"})
	const writers, per = 4, 60
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := range per {
				src := "s"
				if k%3 == 0 {
					src = "other"
				}
				if _, err := e.l.Append(context.Background(), "w", []event.Event{{Action: fmt.Sprint("a", w, "-", k), Source: src}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	q := mustQuery(t, "source", "s")
	var got []int64
	after := int64(-1)
	wantN := 1 + writers*(per-per/3)
	for round := 0; len(got) < wantN; round++ {
		if round > 10000 {
			t.Fatal("stream makes no progress")
		}
		ctx, cancel := context.WithCancel(context.Background())
		stop := 1 + round%7
		err := e.l.Stream(ctx, q, after, func(r Record) error {
			if r.Event.Source != "s" {
				t.Fatalf("record %d does not match", r.Index)
			}
			got = append(got, r.Index)
			after = r.Index
			if stop--; stop == 0 || len(got) == wantN {
				cancel()
			}
			return nil
		})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	wg.Wait()
	all := checkStore(t, e.l)
	var want []int64
	for i := range int64(len(all)) {
		if all[i].Event.Source == "s" {
			want = append(want, i)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("streamed %v\nwant %v", got, want)
	}
}

// TestStreamWaits checks a stream delivers an event appended after it
// started, and stops on a send error.
func TestStreamWaits(t *testing.T) {
	e := newEnv(t, nil)
	errStop := errors.New("stop")
	done := make(chan error, 1)
	go func() {
		done <- e.l.Stream(context.Background(), Query{}, -1, func(r Record) error {
			if r.Event.Action != "late" {
				return fmt.Errorf("got %q", r.Event.Action)
			}
			return errStop
		})
	}()
	time.Sleep(50 * time.Millisecond)
	e.append("w", event.Event{Action: "late"})
	select {
	case err := <-done:
		if !errors.Is(err, errStop) {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not deliver")
	}
}

// TestStreamResumePastLog checks a resume point at or past the published
// size is refused at once with ErrBadCursor, among them the one whose
// next+1 overflows int64 (which used to spin a core forever, deaf to its
// context).
func TestStreamResumePastLog(t *testing.T) {
	e := newEnv(t, nil)
	e.append("w", event.Event{Action: "a"}, event.Event{Action: "b"})
	if _, err := e.l.WaitReceipts(t.Context(), []int64{1}); err != nil {
		t.Fatal(err)
	}
	for _, after := range []int64{2, 3, math.MaxInt64 - 1, math.MaxInt64} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		done := make(chan error, 1)
		go func() {
			done <- e.l.Stream(ctx, Query{}, after, func(r Record) error {
				return fmt.Errorf("sent event %d", r.Index)
			})
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrBadCursor) || !strings.Contains(err.Error(), fmt.Sprint(after)) || !strings.Contains(err.Error(), "has 2 events") {
				t.Errorf("after %d: %v, want ErrBadCursor naming the index and the size", after, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("after %d: the stream neither refused nor returned 8 s after its context ended", after)
		}
		cancel()
	}
	// The last index is a valid resume point: the stream waits for the next.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.l.Stream(ctx, Query{}, 1, func(Record) error { return errors.New("sent") }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after the last index: %v, want the context's end", err)
	}
}

// TestStreamErasedMidChunk: a stream reads its events a chunk of payloads
// at a time and sends them one by one, as fast as its client takes them;
// an event of the chunk erased while an earlier one was being sent (its
// erasure returned: the event is gone from the store's files) is not sent.
// A version-3 payload opens from the copy the scan made, with no later
// lookup that would find its key gone: the stream must look again.
func TestStreamErasedMidChunk(t *testing.T) { payloadVersions(t, nil, testStreamErasedMidChunk) }

func testStreamErasedMidChunk(t *testing.T, e *env, mixed func()) {
	var evs []event.Event
	for k := range 4 {
		evs = append(evs, ev("alice", "read", "r", "success", "kube", e.clock.Now().Add(time.Duration(k)*time.Second)))
	}
	a := e.append("writer", evs...)
	mixed()
	last := e.append("writer", ev("bob", "read", "r", "success", "kube", e.clock.Now()))[0].Index
	if _, _, err := e.log.WaitSize(context.Background(), last+1); err != nil {
		t.Fatal(err)
	}
	target := a[2].Index
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sent []int64
	err := e.l.Stream(ctx, Query{}, -1, func(r Record) error {
		sent = append(sent, r.Index)
		if r.Index == a[0].Index {
			if _, err := e.l.Erase(context.Background(), target, "admin", "while streamed"); err != nil {
				return err
			}
		}
		if r.Index >= last {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if slices.Contains(sent, target) {
		t.Fatalf("the stream sent event %d after its erasure returned: sent %v", target, sent)
	}
	if !slices.Contains(sent, a[3].Index) || !slices.Contains(sent, last) {
		t.Fatalf("the stream skipped more than the erased event: sent %v", sent)
	}
}

// TestStreamShreddedMidChunk: a retention pass that shreds the day of a
// chunk of payloads a stream already read (while it sent an earlier event)
// leaves those events skipped, as shredded, not a stream cut short by a
// payload whose day key is gone ("no data key": an export catching up on
// old days is the likeliest reader of a day being shredded).
func TestStreamShreddedMidChunk(t *testing.T) { payloadVersions(t, nil, testStreamShreddedMidChunk) }

func testStreamShreddedMidChunk(t *testing.T, e *env, mixed func()) {
	var evs []event.Event
	for k := range 4 {
		evs = append(evs, ev("alice", "read", "r", "success", "kube", e.clock.Now().Add(time.Duration(k)*time.Second)))
	}
	a := e.append("writer", evs...)
	mixed()
	e.clock.Add(401 * 24 * time.Hour) // their day ended 400 days ago
	last := e.append("writer", ev("bob", "read", "r", "success", "kube", e.clock.Now()))[0].Index
	if _, _, err := e.log.WaitSize(context.Background(), last+1); err != nil {
		t.Fatal(err)
	}
	e.l.retention = 400 * 24 * time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sent []int64
	err := e.l.Stream(ctx, Query{}, -1, func(r Record) error {
		sent = append(sent, r.Index)
		if r.Index == a[0].Index {
			if days, err := e.l.Retain(context.Background()); err != nil || len(days) != 1 {
				return fmt.Errorf("Retain: %v, %v", days, err)
			}
		}
		if r.Index >= last {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stream: %v (sent %v)", err, sent)
	}
	if !slices.Equal(sent, []int64{a[0].Index, last}) {
		t.Fatalf("the stream sent %v, want %d and %d", sent, a[0].Index, last)
	}
}
