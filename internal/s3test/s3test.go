// Package s3test runs an S3-compatible server as a separate process for
// tests (the s3server command beside it: gofakes3 over a directory; or
// SeaweedFS's weed, when INDELIBLE_TEST_WEED names a binary), and a TCP
// proxy that a test can cut to partition a node from its bucket.
package s3test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bucket is the bucket every server creates.
const Bucket = "log"

var (
	buildOnce sync.Once
	buildDir  string
	binary    string
	buildErr  error
)

// Binary builds the s3server command once per test process and returns its
// path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "s3test-")
		if buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "s3server")
		out, err := exec.Command("go", "build", "-o", binary, "indelible.dev/internal/s3test/s3server").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building s3server: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// Options configure Start.
type Options struct {
	Dir              string // the server's data directory; default a new t.TempDir()
	Addr             string // listen address; default 127.0.0.1:0
	IgnoreConditions bool   // strip If-None-Match and If-Match (a store that ignores them)
	// Versioning keeps every version of every object, as a bucket under
	// Object Lock does (in the server's memory: Dir is then unused).
	Versioning bool
}

// Server is a running s3server process.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	Dir  string
	Addr string
	cmd  *exec.Cmd
	once sync.Once
	// exited, if not nil, is closed when a goroutine's cmd.Wait returns.
	exited chan struct{}
}

// Start starts an s3server process, stopped at the end of the test.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary(t)
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	args := []string{"-dir", o.Dir, "-addr", o.Addr, "-bucket", Bucket}
	if o.IgnoreConditions {
		args = append(args, "-ignore-conditions")
	}
	if o.Versioning {
		args = append(args, "-versioning")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: o.Dir, cmd: cmd}
	t.Cleanup(s.Stop)
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		l, _ := r.ReadString('\n')
		line <- l
		io.Copy(io.Discard, r)
	}()
	select {
	case l := <-line:
		u, ok := strings.CutPrefix(strings.TrimSpace(l), "listening on ")
		if !ok {
			t.Fatalf("s3server: unexpected first line %q", l)
		}
		s.URL = u
		s.Addr = strings.TrimPrefix(u, "http://")
	case <-time.After(60 * time.Second):
		t.Fatal("s3server did not start within 60s")
	}
	return s
}

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		if s.exited != nil {
			<-s.exited
			return
		}
		s.cmd.Wait()
	})
}

// BucketURL returns the --bucket URL of the server's bucket at endpoint
// (the server's URL, or a proxy's).
func BucketURL(endpoint string) string {
	return "s3://" + Bucket + "?endpoint=" + endpoint + "&region=us-east-1&path_style=true"
}

// Env is the AWS SDK environment for the test servers (they check no
// signature, but the SDK wants credentials).
var Env = []string{
	"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
	"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
}

// SetEnv sets Env for the test (in-process SDK clients).
func SetEnv(t testing.TB) {
	for _, kv := range Env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Proxy forwards TCP connections from a loopback port to a target; Cut
// partitions it.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
}

// NewProxy starts a proxy to target (host:port), closed at the end of the test.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.Cut() })
	go p.serve()
	return p
}

// URL is http://ADDR of the proxy.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[u] = struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

// Cut closes every connection and refuses new ones until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Heal lets connections through again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}
