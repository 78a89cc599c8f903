package storetest

import (
	"testing"

	"indelible.dev/event"
)

// TestReopen: what was appended before Close is read back after Open (the
// same keys), and Close twice is harmless.
func TestReopen(t *testing.T) {
	s := New(t, "example.com/storetest")
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
	s.Open()
	r, err := s.Layer.Get(a[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if r.Event.Action != "doc.read" {
		t.Errorf("read back %+v", r.Event)
	}
}
