//go:build unix

// Package pgtest starts a private PostgreSQL 15 cluster for tests, once per
// test binary, and gives each test its own database.
//
// The cluster runs from Debian's postgresql-15 (/usr/lib/postgresql/15/bin,
// or initdb on PATH) as the postgres user when the tests run as root, in a
// temporary directory, on a random loopback port, with fsync and
// synchronous_commit on. A watchdog process stops it (immediate shutdown)
// and removes its directory when the test binary exits, however it exits.
//
// Without PostgreSQL a test calling DSN skips, unless CI=true: then it
// fails. With INDELIBLE_TEST_STORE=postgres, Enabled reports true: the
// ledger, eventstore and audited tests then run their logs on PostgreSQL.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pgkv"
)

// Enabled reports whether the test suite is asked to run on PostgreSQL
// (INDELIBLE_TEST_STORE=postgres).
func Enabled() bool { return os.Getenv("INDELIBLE_TEST_STORE") == "postgres" }

var (
	once    sync.Once
	baseDSN string // the cluster's postgres database
	dir     string
	pgBin   string
	initErr error
)

// Bin returns the directory of PostgreSQL's programs, or "" if none is
// installed.
func Bin() string {
	for _, d := range []string{"/usr/lib/postgresql/15/bin"} {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// Need skips t when PostgreSQL is not installed, or fails it when CI=true.
func Need(t testing.TB) {
	t.Helper()
	if Bin() != "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("PostgreSQL 15 is not installed (apt-get install postgresql-15): CI=true, so this test fails instead of skipping")
	}
	t.Skip("PostgreSQL 15 is not installed (apt-get install postgresql-15)")
}

// DSN returns the URL of a new, empty database on the test binary's
// cluster (starting it on first use).
func DSN(t testing.TB) string {
	t.Helper()
	Need(t)
	once.Do(start)
	if initErr != nil {
		t.Fatalf("starting PostgreSQL: %v", initErr)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, baseDSN)
	if err != nil {
		t.Fatalf("connecting to the test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database: %v", err)
	}
	return dbURL(name)
}

// Store opens a new pgkv store on a new database, closed when t ends.
func Store(t testing.TB) (*pgkv.Store, string) {
	t.Helper()
	dsn := DSN(t)
	s, err := pgkv.Open(context.Background(), dsn, pgkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

// ForDirs returns a function that opens, for each directory, a store on a
// database of its own, the same one each time the directory is opened again:
// the ledger's test hook (ledger.TestingStore), so that a test reopening a
// log's directory reopens its database.
func ForDirs() func(dir string) (kv.Store, error) {
	var mu sync.Mutex
	dsns := map[string]string{}
	return func(d string) (kv.Store, error) {
		if Bin() == "" {
			return nil, fmt.Errorf("INDELIBLE_TEST_STORE=postgres, but PostgreSQL 15 is not installed (apt-get install postgresql-15)")
		}
		once.Do(start)
		if initErr != nil {
			return nil, initErr
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		dsn, ok := dsns[abs]
		if !ok {
			var b [6]byte
			rand.Read(b[:])
			name := "d_" + hex.EncodeToString(b[:])
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			conn, err := pgx.Connect(ctx, baseDSN)
			if err == nil {
				_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
				conn.Close(ctx)
			}
			cancel()
			if err != nil {
				mu.Unlock()
				return nil, fmt.Errorf("pgtest: creating a database: %w", err)
			}
			dsn = dbURL(name)
			dsns[abs] = dsn
		}
		mu.Unlock()
		// A directory stands for the log's store: create it as pebble would,
		// so that tests looking at it find it.
		os.MkdirAll(abs, 0o755)
		return pgkv.Open(context.Background(), dsn, pgkv.Options{})
	}
}

var port int

func dbURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, name)
}

// start initialises and starts the cluster, and the watchdog that stops it.
func start() {
	pgBin = Bin()
	var err error
	dir, err = os.MkdirTemp("", "pgtest-")
	if err != nil {
		initErr = err
		return
	}
	var cred *syscall.Credential
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			initErr = fmt.Errorf("running as root needs the postgres user: %w", err)
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			initErr = err
			return
		}
	}
	run := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(pgBin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", name, err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		initErr = err
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		initErr = err
		return
	}
	port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 128MB
max_connections = 300
max_wal_size = 2GB
`, port, dir)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		f.Close()
	}
	if err != nil {
		initErr = err
		return
	}
	if err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "pg.log"), "-w", "-t", "120", "start"); err != nil {
		initErr = err
		return
	}
	// The watchdog: once this process is gone, stop the cluster at once
	// (SIGQUIT: immediate shutdown) and remove its directory.
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done
kill -QUIT "$(head -1 '%s/postmaster.pid')" 2>/dev/null
sleep 2
rm -rf '%s'`, os.Getpid(), data, dir)
	wd := exec.Command("/bin/sh", "-c", script)
	wd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := wd.Start(); err != nil {
		initErr = err
		return
	}
	go wd.Wait()
	baseDSN = dbURL("postgres")
}

// PostmasterPID returns the process ID of the test cluster's postmaster (for
// benchmarks that count its CPU), starting the cluster if need be.
func PostmasterPID(t testing.TB) string {
	t.Helper()
	Need(t)
	once.Do(start)
	if initErr != nil {
		t.Fatalf("starting PostgreSQL: %v", initErr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(pid)
}
