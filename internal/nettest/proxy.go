// Package nettest is a test helper: a TCP proxy a test can blackhole, to
// partition a process from a server (PostgreSQL) the way a dead network
// does: connections stay open, and nothing arrives any more, in either
// direction, without a reset.
package nettest

import (
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from a loopback port to a target until
// Blackhole; Heal lets traffic through again (connections opened before
// the blackhole stay dead: what they sent meanwhile is lost).
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	holed bool
	gen   int // bumped by Blackhole: pipes of older generations drop everything
	conns []net.Conn
}

// NewProxy starts a proxy to target (host:port), closed at the end of the test.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	t.Cleanup(p.Close)
	go p.serve()
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Blackhole stops forwarding: bytes on open connections are read and
// dropped, new connections are accepted and never answered.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	p.holed = true
	p.gen++
	p.mu.Unlock()
}

// Heal forwards new connections again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.holed = false
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		holed, gen := p.holed, p.gen
		p.mu.Unlock()
		if holed {
			go drain(c)
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, u)
		p.mu.Unlock()
		go p.pipe(u, c, gen)
		go p.pipe(c, u, gen)
	}
}

// pipe copies src to dst while the proxy's generation is gen; after a
// blackhole it keeps reading src and drops the bytes.
func (p *Proxy) pipe(dst, src net.Conn, gen int) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		live := p.gen == gen
		p.mu.Unlock()
		if live {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

func drain(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
