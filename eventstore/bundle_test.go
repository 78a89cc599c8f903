package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"indelible.dev/event"
	"indelible.dev/evidence"
	itlog "indelible.dev/tlog"
)

// TestBundle builds bundles from a real store holding open, erased and
// retention-shredded entries, and verifies them with package evidence.
func TestBundle(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	day1 := e.clock.Now()
	for k := range 40 {
		e.append("writer", ev(fmt.Sprint("u", k%3), "login", "", "success", "sso", time.Time{}))
		e.clock.Add(time.Minute)
	}
	e.clock.Add(24 * time.Hour)
	day2 := e.clock.Now()
	var idx []int64
	for k := range 300 {
		a := e.append("writer", ev(fmt.Sprint("u", k%3), []string{"deploy", "login"}[k%2], "", []string{"success", "denied"}[k%2], "ci", time.Time{}))
		idx = append(idx, a[0].Index)
		e.clock.Add(time.Second)
	}
	if _, err := e.l.Erase(ctx, idx[7], "admin", "GDPR 12"); err != nil {
		t.Fatal(err)
	}
	e.l.retention = 400 * 24 * time.Hour
	e.clock.Add(400 * 24 * time.Hour)
	// The log is in use (retention holds back a clock far past the newest
	// event: TestRetentionClockJump).
	e.append("writer", ev("u0", "login", "", "success", "sso", time.Time{}))
	if days, err := e.l.Retain(ctx); err != nil || len(days) != 1 {
		t.Fatalf("Retain: %v %v", days, err)
	}
	n, _, err := e.log.ServedCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	policy, err := itlog.NewPolicy(e.vkey, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	build := func(req BundleRequest) ([]byte, *BundlePlan) {
		t.Helper()
		p, err := e.l.PlanBundle(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := p.Write(ctx, &b, nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes(), p
	}
	verify := func(b []byte) *evidence.Report {
		t.Helper()
		r, err := evidence.Verify(bytes.NewReader(b), evidence.Options{Policy: policy})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() {
			t.Fatalf("bundle does not verify: %v", r.Failures)
		}
		return r
	}

	// Everything, against the newest checkpoint.
	all, _ := build(BundleRequest{From: 0, To: n, LogKey: e.vkey})
	r := verify(all)
	// Index 0..39 day 1 (shredded), 300 on day 2 (one erased), then the
	// erase record, one event 400 days later and the retention record.
	if r.Shredded != 40 || r.Erased != 1 || r.Open != n-41 {
		t.Fatalf("counts: %s", r.SummaryLine())
	}
	if len(r.ErasedEntries) != 1 || r.ErasedEntries[0].Index != idx[7] || r.ErasedEntries[0].EraseIndex < 0 || r.ErasedEntries[0].Erasure.Reason != "GDPR 12" {
		t.Fatalf("erased entries: %+v", r.ErasedEntries)
	}
	if r.ShreddedDays[day1.Format(time.DateOnly)] != 40 {
		t.Fatalf("shredded days: %v", r.ShreddedDays)
	}
	again, _ := build(BundleRequest{From: 0, To: n, LogKey: e.vkey})
	if !bytes.Equal(all, again) {
		t.Fatal("the same request twice gives different bundles")
	}

	// A sub-range against an older archived checkpoint, with a pin.
	sub, _ := build(BundleRequest{From: 41, To: 200, Size: 250, HasSize: true, PinnedSize: 100, HasPin: true})
	r = verify(sub)
	if r.Accounted != 159 || r.Size != 250 {
		t.Fatalf("sub-range: %s", r.SummaryLine())
	}
	cp100, err := e.log.ArchivedCheckpoint(100)
	if err != nil {
		t.Fatal(err)
	}
	r, err = evidence.Verify(bytes.NewReader(sub), evidence.Options{Policy: policy, Pinned: cp100})
	if err != nil || !r.OK() || r.PinnedSize != 100 {
		t.Fatalf("pinned: %v %v", err, r.Failures)
	}

	// A time window: the first 30 seconds of day 2.
	tw, p := build(BundleRequest{ByTime: true, Since: day2, Until: day2.Add(30 * time.Second)})
	if p.Begin() != 40 || p.End() != 70 {
		t.Fatalf("window [%s, +30s) mapped to [%d, %d), want [40, 70)", day2, p.Begin(), p.End())
	}
	r = verify(tw)
	if r.Manifest.Window.By != "received_at" || r.Manifest.Window.FirstReceivedAt != day2.Format(time.RFC3339Nano) {
		t.Fatalf("window: %+v", r.Manifest.Window)
	}

	// Refusals.
	for _, req := range []BundleRequest{{From: 5, To: 4}, {From: 0, To: n + 1}, {From: 0, To: 10, HasPin: true, PinnedSize: n + 1}, {ByTime: true, Since: day2, Until: day2}} {
		if _, err := e.l.PlanBundle(req); !errors.Is(err, ErrBadBundle) {
			t.Errorf("%+v: %v, want ErrBadBundle", req, err)
		}
	}
	if _, err := e.l.PlanBundle(BundleRequest{From: 0, To: 1, Size: n + 100, HasSize: true}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a size never served: %v", err)
	}
}

// TestSummaryFields: the fast field reader agrees with event.Decode.
func TestSummaryFields(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC)
	for _, e := range []event.Event{
		{Action: "login"},
		{Action: `a"b\c/é<&>`, Outcome: "denied", Time: at.Add(-time.Hour * 30)},
		{Action: "x", Actor: &event.Actor{ID: `}{"action":"no"`, Type: "u"}, Resource: &event.Resource{ID: "[]"}, Reason: "\"quoted\" {",
			Metadata: []byte(`{"action":"nested","a":[1,{"b":"}]"}],"n":-1.5e3,"t":true,"z":null}`), Source: "s", ID: "id\\"},
	} {
		e.Finish(at, `tok"en`)
		b, err := event.Canonical(e)
		if err != nil {
			t.Fatal(err)
		}
		d, err := event.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		f, err := summaryFields(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		o := d.Outcome
		if o == "" {
			o = "-"
		}
		want := [4]string{d.Time.UTC().Format(time.DateOnly), d.Action, o, d.ReceivedAt.UTC().Format(time.RFC3339Nano)}
		if got := [4]string{string(f.day), string(f.action), string(f.outcome), string(f.receivedAt)}; got != want {
			t.Errorf("%s:\n got %q\nwant %q", b, got, want)
		}
	}
}

// TestSpooled: the spool's short form gives back each line exactly, and a
// truncated or altered frame is an error, never a different line.
func TestSpooled(t *testing.T) {
	var salt [event.SaltSize]byte
	salt[3] = 7
	eb := []byte(`{"action":"login","received_at":"2026-11-25T10:15:00Z","submitted_by":"w","time":"2026-11-25T10:15:00Z"}`)
	lines := []evidence.Line{
		{Index: 10, Salt: salt, EventBytes: eb, Commitment: event.Commitment(salt, eb)},
		{Index: 11, Commitment: [32]byte{1}, Erased: &evidence.Erasure{At: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), By: "admin", Reason: "GDPR \"7\""}},
		{Index: 12, Commitment: [32]byte{2}, Shredded: "2026-11-20"},
		{Index: 13, Salt: salt, EventBytes: []byte(`{}`), Commitment: [32]byte{3}},
	}
	var frame, want []byte
	for k := range lines {
		start := len(want)
		want = evidence.AppendLine(want, &lines[k])
		frame = appendSpooled(frame, &lines[k], want[start:])
	}
	read := func(frame []byte) ([]byte, error) {
		var out, scratch []byte
		r := bytes.NewReader(frame)
		var err error
		for i := int64(10); i < 14 && err == nil; i++ {
			out, err = readSpooled(r, i, out, &scratch)
		}
		if err == nil && r.Len() != 0 {
			err = errors.New("trailing bytes")
		}
		return out, err
	}
	got, err := read(frame)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %q (%v), want %q", got, err, want)
	}
	for k := range frame {
		if _, err := read(frame[:k]); err == nil {
			t.Fatalf("a frame cut at %d of %d bytes read back", k, len(frame))
		}
	}
	bad := bytes.Clone(frame)
	bad[0] = 'x'
	if _, err := read(bad); err == nil {
		t.Fatal("a frame of an unknown kind read back")
	}
}
