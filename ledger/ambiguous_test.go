package ledger

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv/pgkv"
)

// cutProxy forwards TCP connections to a server; once cut, it drops
// everything the server sends and, a moment later, closes the clients'
// connections: a commit sent before the cut reaches the server (and
// commits) but its answer never arrives.
type cutProxy struct {
	ln    net.Listener
	to    string
	cut   atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: to}
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 && !p.cut.Load() {
						c.Write(buf[:n])
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *cutProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestAmbiguousCommitStops: the connection is lost after a commit was sent
// and before its answer came: the log cannot know whether the batch
// committed, so it stops (ErrFailed wrapping ErrAmbiguous) and publishes
// nothing of it; reopening from the store gives the truth (here: the batch
// did commit, which is why the node may not go on from memory).
func TestAmbiguousCommitStops(t *testing.T) {
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, u.Host)
	pu := *u
	pu.Host = p.ln.Addr().String()
	s, _ := testSigner(t)
	st, err := pgkv.Open(context.Background(), pu.String(), pgkv.Options{Logger: quietLogger(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(t.TempDir(), Options{Signer: s, Store: st, Logger: quietLogger(), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, "a", 2)
	p.cut.Store(true)
	go func() { time.Sleep(time.Second); p.closeAll() }()
	_, err = l.Append(context.Background(), []byte("lost answer"))
	if !errors.Is(err, ErrAmbiguous) || !errors.Is(err, ErrFailed) || Retryable(err) {
		t.Fatalf("append across the cut: %v, want ErrFailed wrapping ErrAmbiguous", err)
	}
	if l.Err() == nil {
		t.Fatal("the log did not stop")
	}
	if cp, _ := l.Checkpoint(); cp.N != 2 {
		t.Fatalf("published size %d after an ambiguous commit, want 2", cp.N)
	}
	p.cut.Store(false) // heal, so that Close is quick
	// The truth is in the store: a new node (the restart) reads it. The
	// batch may or may not have committed (the connection was cut after it
	// was sent, or while its statements were being prepared): either way
	// the store holds a consistent log, and the stopped node served nothing
	// of it.
	b, err := openPG(t, dsn, s)
	if err != nil {
		t.Fatal(err)
	}
	switch cp, _ := b.Checkpoint(); cp.N {
	case 2:
	case 3:
		if e, err := b.Entry(2); err != nil || string(e) != "lost answer" {
			t.Fatalf("entry 2 = %q, %v", e, err)
		}
	default:
		t.Fatalf("the store holds size %d, want 2 or 3", cp.N)
	}
}
