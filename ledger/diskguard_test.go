package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"indelible.dev/internal/tlogtest"
)

func TestDiskFullPausesAppends(t *testing.T) {
	pebbleOnly(t, "the free space of the pebble directory")
	s, _ := testSigner(t)
	var free atomic.Uint64
	free.Store(1 << 40)
	l, err := Open(t.TempDir(), Options{Signer: s, MinFreeBytes: 1 << 20,
		freeSpace: func(string) (uint64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if _, err := l.Append(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	free.Store(1000)
	tlogtest.Eventually(t, 5*time.Second, "appends refused with ErrDiskFull", func() (bool, string) {
		_, err := l.Append(ctx, []byte("b"))
		return errors.Is(err, ErrDiskFull), fmt.Sprint(err)
	})
	paused, _ := l.Checkpoint()
	for i := 0; i < 10; i++ {
		if _, err := l.Append(ctx, []byte("d")); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("append while disk full: %v, want ErrDiskFull", err)
		}
	}
	if cp, _ := l.Checkpoint(); cp.N != paused.N {
		t.Fatalf("size moved from %d to %d while appends were paused", paused.N, cp.N)
	}
	free.Store(1 << 40)
	tlogtest.Eventually(t, 5*time.Second, "appends accepted again", func() (bool, string) {
		_, err := l.Append(ctx, []byte("c"))
		return err == nil, fmt.Sprint(err)
	})
	if e, err := l.Entry(0); err != nil || string(e) != "a" {
		t.Fatalf("entry 0 = %q, %v", e, err)
	}
}
