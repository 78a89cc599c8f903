package evidence

import (
	"bytes"
	"testing"
)

// FuzzParseLine: a line that parses writes back to exactly itself.
func FuzzParseLine(f *testing.F) {
	fx := newFixture(f, 4)
	fx.erase(1, "admin", "why")
	fx.shred(2)
	for _, ln := range fx.lines {
		b := AppendLine(nil, &ln)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte(`{"index":0,"event":{},"event_bytes":"e30=","salt":"","commitment":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ln, err := ParseLine(b)
		if err != nil {
			return
		}
		out := AppendLine(nil, &ln)
		if !bytes.Equal(out[:len(out)-1], b) {
			t.Fatalf("ParseLine(%q) writes back %q", b, out)
		}
	})
}

// FuzzVerify: any input gives a report or ErrUnusable, never a panic, and
// a mutated bundle never verifies unless it is the original.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, 20)
	fx.erase(3, "admin", "why")
	fx.shred(4)
	good := fx.bundle(1, 21, 21, 10, 2)
	policy := fx.policy(2)
	pin := fx.checkpoint(10, 0)
	f.Add(good)
	f.Add(fx.bundle(0, 0, 0, -1, 2))
	f.Add(good[:1024])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Verify(bytes.NewReader(b), Options{Policy: policy, Pinned: pin})
		if err != nil {
			return
		}
		if r.OK() && r.Accounted != r.End-r.Begin {
			t.Fatalf("verified with %d of %d entries accounted for", r.Accounted, r.End-r.Begin)
		}
	})
}

// FuzzBundleParts fuzzes one file inside a well-formed tar (which of the
// manifest, the records, the range and consistency proofs or the summary
// is the first byte), which FuzzVerify's mutations of whole tar files
// rarely reach. (Run the fuzzers with -fuzzminimizetime 1s on a loaded
// machine: the default minute spent minimizing each new input looks like
// a stall.)
func FuzzBundleParts(f *testing.F) {
	fx := newFixture(f, 20)
	fx.erase(3, "admin", "why")
	fx.shred(4)
	good := untar(f, fx.bundle(1, 21, 21, 10, 2))
	policy := fx.policy(2)
	pin := fx.checkpoint(10, 0)
	for _, k := range []byte{0, 2, 3, 4, 5} {
		f.Add(k, good[k].data)
	}
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		files := append([]tarFile(nil), good...)
		files[[]int{0, 2, 3, 4, 5}[int(which)%5]].data = data
		r, err := Verify(bytes.NewReader(retar(t, files, false)), Options{Policy: policy, Pinned: pin})
		if err != nil {
			return
		}
		if r.OK() && (r.Accounted != r.End-r.Begin || r.Size < r.End) {
			t.Fatalf("verified with %d of [%d, %d) accounted for, size %d", r.Accounted, r.Begin, r.End, r.Size)
		}
	})
}
