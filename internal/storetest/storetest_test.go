package storetest

import (
	"testing"

	"indelible.dev/event"
)

// TestReopen: what was appended before Close is read back after Open (the
// same keys), Close twice is harmless, and up runs after each Open with
// the layer open, its down before each Close while the layer still is.
func TestReopen(t *testing.T) {
	var ups, downs int
	s := New(t, "example.com/storetest", func(s *Store) func() {
		if s.Layer == nil {
			t.Error("up without the layer")
		}
		ups++
		return func() {
			if s.Layer == nil {
				t.Error("down after the layer closed")
			}
			downs++
		}
	})
	a, err := s.Layer.Append(t.Context(), "writer", []event.Event{{Action: "doc.read", Outcome: "success"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Log.WaitSize(t.Context(), a[0].Index+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if s.Log != nil || s.Layer != nil {
		t.Fatal("Close left the store open")
	}
	s.Reopen()
	r, err := s.Layer.Get(a[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if r.Event.Action != "doc.read" {
		t.Errorf("read back %+v", r.Event)
	}
	if ups != 2 || downs != 1 {
		t.Errorf("up ran %d times, down %d, want 2 and 1", ups, downs)
	}
}
