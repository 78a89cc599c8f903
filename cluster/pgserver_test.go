package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A private PostgreSQL cluster for this package's tests, started once per
// test binary on a loopback port (stopped by TestMain), and a database per
// test. (The store's internal/pgtest does the same for the other packages.)

var pg struct {
	once sync.Once
	dir  string
	port int
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg.dir != "" {
		runPG(pg.bin+"/pg_ctl", "-D", pg.dir+"/data", "-m", "immediate", "-w", "stop")
		os.RemoveAll(pg.dir)
	}
	os.Exit(code)
}

func pgBin() string {
	for _, d := range []string{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"} {
		if _, err := os.Stat(d + "/initdb"); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// runPG runs a PostgreSQL program, as the postgres user when root.
func runPG(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	if os.Getuid() == 0 {
		q := ""
		for _, a := range append([]string{name}, args...) {
			q += " " + strconv.Quote(a)
		}
		cmd = exec.Command("su", "postgres", "-s", "/bin/sh", "-c", q)
	}
	return cmd.CombinedOutput()
}

func startPG() {
	pg.bin = pgBin()
	if pg.bin == "" {
		pg.err = fmt.Errorf("no PostgreSQL (initdb) installed")
		return
	}
	dir, err := os.MkdirTemp("", "cluster-pg-")
	if err != nil {
		pg.err = err
		return
	}
	pg.dir = dir
	os.Chmod(dir, 0o755)
	if os.Getuid() == 0 {
		exec.Command("chown", "postgres", dir).Run()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pg.err = err
		return
	}
	pg.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if out, err := runPG(pg.bin+"/initdb", "-D", dir+"/data", "-U", "postgres", "--auth=trust", "-E", "UTF8"); err != nil {
		pg.err = fmt.Errorf("initdb: %v\n%s", err, out)
		return
	}
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nfsync = on\nmax_connections = 200\n", pg.port, dir)
	f, err := os.OpenFile(dir+"/data/postgresql.conf", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		pg.err = err
		return
	}
	f.WriteString(conf)
	f.Close()
	if out, err := runPG(pg.bin+"/pg_ctl", "-D", dir+"/data", "-l", dir+"/pg.log", "-w", "-t", "60", "start"); err != nil {
		pg.err = fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
}

// testDB returns the URL of a new, empty database.
func testDB(t testing.TB) string {
	t.Helper()
	pg.once.Do(startPG)
	if pg.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL: %v", pg.err)
		}
		t.Skipf("PostgreSQL: %v", pg.err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return pgURL(name)
}

func pgURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, db)
}
