//go:build unix

package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StandbyName is the standby's application_name, the name the primary's
// synchronous_standby_names lists.
const StandbyName = "pgtest_standby"

// A Pair is a PostgreSQL primary with a synchronous streaming standby, each
// its own cluster (data directory, loopback port), started by StartPair for
// one test. The primary runs with fsync on, synchronous_commit = on and
// synchronous_standby_names = 'pgtest_standby': a commit returns only once
// the standby has flushed its WAL to disk (remote flush; not remote_apply,
// so a read on the standby may briefly lag a commit). The standby was
// cloned with pg_basebackup -X stream -R and streams from the primary as a
// hot standby (it answers reads).
//
// Both servers run as the postgres user when the tests run as root. They
// are stopped (immediate shutdown) and their directory removed when the
// test ends, or by a watchdog if the test binary dies first.
type Pair struct {
	// Primary and Standby are the URLs of the database "indelible" on the
	// primary and on the standby (the same database, replicated).
	Primary, Standby string
	// PrimaryPort and StandbyPort are their loopback ports.
	PrimaryPort, StandbyPort int

	t                        testing.TB
	dir                      string
	primaryData, standbyData string
	cred                     *syscall.Credential
	primaryPID               int
	killed                   bool
}

// StartPair starts a primary and its synchronous standby for t (skipping t
// without PostgreSQL, failing it when CI=true), creates the database
// "indelible" on the primary, and returns once the standby is streaming
// as the primary's synchronous standby. It takes a few seconds.
func StartPair(t testing.TB) *Pair {
	t.Helper()
	Need(t)
	bin := Bin()
	cred, uid, gid, err := serverUser()
	if err != nil {
		t.Fatal(err)
	}
	// Not under t.TempDir(): its parents are closed to the postgres user.
	dir, err := os.MkdirTemp("", "pgpair-")
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			t.Fatal(err)
		}
	}
	p := &Pair{
		t: t, dir: dir, cred: cred,
		primaryData: filepath.Join(dir, "primary"),
		standbyData: filepath.Join(dir, "standby"),
	}
	t.Cleanup(p.stop)
	if err := p.watchdog(); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pgtest: %s %q: %v\n%s", name, args, err, out)
		}
	}
	if p.PrimaryPort, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if p.StandbyPort, err = freePort(); err != nil {
		t.Fatal(err)
	}

	run("initdb", "-D", p.primaryData, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	// initdb's pg_hba.conf trusts replication connections from 127.0.0.1.
	if err := appendConf(p.primaryData, fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
max_wal_senders = 10
shared_buffers = 128MB
max_connections = 300
max_wal_size = 2GB
`, p.PrimaryPort, dir)); err != nil {
		t.Fatal(err)
	}
	run("pg_ctl", "-D", p.primaryData, "-l", filepath.Join(dir, "primary.log"), "-w", "-t", "120", "start")
	if p.primaryPID, err = postmasterPID(p.primaryData); err != nil {
		t.Fatal(err)
	}

	// The standby: a base backup with the WAL streamed alongside and -R
	// (standby.signal and primary_conninfo), then its own port and the
	// application_name the primary knows it by (the last setting in
	// postgresql.auto.conf wins over the one -R wrote).
	run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(p.PrimaryPort), "-U", "postgres",
		"-D", p.standbyData, "-X", "stream", "-R", "-c", "fast")
	if err := appendConf(p.standbyData, fmt.Sprintf(`
port = %d
hot_standby = on
`, p.StandbyPort)); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(p.standbyData, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = fmt.Fprintf(f, "primary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=%s'\n", p.PrimaryPort, StandbyName)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	run("pg_ctl", "-D", p.standbyData, "-l", filepath.Join(dir, "standby.log"), "-w", "-t", "120", "start")

	// Only now make the standby synchronous: set earlier, the primary's
	// commits would wait for a standby that does not exist yet. The
	// standby's copy of the configuration does not have it, so once
	// promoted it commits alone.
	if err := appendConf(p.primaryData, fmt.Sprintf("synchronous_standby_names = '%s'\n", StandbyName)); err != nil {
		t.Fatal(err)
	}
	run("pg_ctl", "-D", p.primaryData, "reload")

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := waitSync(ctx, p.url(p.PrimaryPort, "postgres")); err != nil {
		t.Fatalf("pgtest: the standby never became synchronous: %v\n%s", err, p.Logs())
	}
	conn, err := pgx.Connect(ctx, p.url(p.PrimaryPort, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE indelible")
	conn.Close(ctx)
	if err != nil {
		t.Fatalf("pgtest: creating the database: %v", err)
	}
	p.Primary = p.url(p.PrimaryPort, "indelible")
	p.Standby = p.url(p.StandbyPort, "indelible")
	return p
}

// MultiHost returns a URL naming both servers, primary first, with
// target_session_attrs=read-write: pgx connects to whichever of them
// accepts writes (the primary, or the standby once promoted).
func (p *Pair) MultiHost() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/indelible?sslmode=disable&target_session_attrs=read-write",
		p.PrimaryPort, p.StandbyPort)
}

func (p *Pair) url(port int, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, db)
}

// WithSyncStandby reports whether the primary currently has a synchronous
// standby streaming (pg_stat_replication's sync_state = 'sync').
func (p *Pair) WithSyncStandby(ctx context.Context) (bool, error) {
	conn, err := pgx.Connect(ctx, p.url(p.PrimaryPort, "postgres"))
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND sync_state = 'sync'", StandbyName).Scan(&n)
	return n > 0, err
}

// SetPrimary sets a parameter in the primary's configuration (value as
// written in postgresql.conf, quoted if need be) and reloads it: for
// instance synchronous_standby_names set to an empty quoted string makes
// the standby asynchronous, which shows what the synchronous one prevents.
func (p *Pair) SetPrimary(name, value string) {
	p.t.Helper()
	if err := appendConf(p.primaryData, fmt.Sprintf("%s = %s\n", name, value)); err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(Bin(), "pg_ctl"), "-D", p.primaryData, "reload")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("pgtest: pg_ctl reload: %v\n%s", err, out)
	}
}

// KillPrimary SIGKILLs the primary's postmaster and every process it
// started (its backends, the WAL sender, the checkpointer...), as a machine
// losing power would: no shutdown checkpoint, no WAL sent after the kill,
// every connection reset. (PostgreSQL puts each child in a session of its
// own, so the postmaster's process group is not enough: the postmaster is
// stopped first, so it starts nothing more, then its children are listed
// and everything is killed at once.)
func (p *Pair) KillPrimary() {
	p.t.Helper()
	if p.killed {
		return
	}
	p.killed = true
	if err := signalServer(p.primaryPID, syscall.SIGKILL); err != nil {
		p.t.Fatalf("pgtest: killing the primary (postmaster %d): %v", p.primaryPID, err)
	}
	// Wait for the postmaster to be gone (it is not our child: poll).
	for i := 0; i < 500 && syscall.Kill(p.primaryPID, 0) == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	// Nobody must signal the PID in a stale postmaster.pid again.
	os.Remove(filepath.Join(p.primaryData, "postmaster.pid"))
}

// FreezeStandby SIGSTOPs the standby's postmaster and every process it
// started (its WAL receiver among them), and returns a function that
// SIGCONTs them: while it is frozen, a commit on the primary waits.
func (p *Pair) FreezeStandby() (thaw func()) {
	p.t.Helper()
	pid, err := postmasterPID(p.standbyData)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := signalServer(pid, syscall.SIGSTOP); err != nil {
		p.t.Fatal(err)
	}
	return func() { signalServer(pid, syscall.SIGCONT) }
}

// signalServer sends sig to a postmaster and to every child it has. A
// SIGKILL or SIGSTOP goes to the postmaster first (so it starts no new
// child after the list is read); a SIGCONT to the children first.
func signalServer(pm int, sig syscall.Signal) error {
	if sig == syscall.SIGCONT {
		for _, c := range children(pm) {
			syscall.Kill(c, sig)
		}
		return syscall.Kill(pm, sig)
	}
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		return err
	}
	for _, c := range children(pm) {
		syscall.Kill(c, sig)
	}
	return syscall.Kill(pm, sig)
}

// children lists the processes whose parent is pid (from /proc).
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
				out = append(out, c)
			}
		}
	}
	return out
}

// Promote promotes the standby (pg_ctl promote) and returns once it
// accepts writes on the database "indelible".
func (p *Pair) Promote() {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(Bin(), "pg_ctl"), "-D", p.standbyData, "-w", "-t", "60", "promote")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("pgtest: pg_ctl promote: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		last = func() error {
			conn, err := pgx.Connect(ctx, p.Standby)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			var id int64
			// txid_current assigns a transaction ID: it fails on a server
			// still in recovery.
			return conn.QueryRow(ctx, "SELECT txid_current()").Scan(&id)
		}()
		if last == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("pgtest: the promoted standby does not accept writes: %v\n%s", last, p.Logs())
}

// Logs returns the tail of both servers' logs, for a failure message.
func (p *Pair) Logs() string {
	var b strings.Builder
	for _, n := range []string{"primary.log", "standby.log"} {
		data, _ := os.ReadFile(filepath.Join(p.dir, n))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s", n, data)
	}
	return b.String()
}

// stop stops both servers at once and removes their directory.
func (p *Pair) stop() {
	for _, d := range []string{p.primaryData, p.standbyData} {
		if _, err := os.Stat(filepath.Join(d, "postmaster.pid")); err != nil {
			continue
		}
		cmd := exec.Command(filepath.Join(Bin(), "pg_ctl"), "-D", d, "-m", "immediate", "-w", "-t", "30", "stop")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
		cmd.Run()
	}
	os.RemoveAll(p.dir)
}

// watchdog starts a process that, once this test binary is gone, stops
// whatever of the pair still runs (immediate shutdown) and removes its
// directory: a test binary killed by its timeout leaves nothing behind.
func (p *Pair) watchdog() error {
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done
[ -d '%[2]s' ] || exit 0
for d in '%[3]s' '%[4]s'; do
  [ -f "$d/postmaster.pid" ] && kill -QUIT "$(head -1 "$d/postmaster.pid")" 2>/dev/null
done
sleep 2
rm -rf '%[2]s'`, os.Getpid(), p.dir, p.primaryData, p.standbyData)
	wd := exec.Command("/bin/sh", "-c", script)
	wd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := wd.Start(); err != nil {
		return err
	}
	go wd.Wait()
	return nil
}

// waitSync waits until the server at dsn has a synchronous standby
// streaming.
func waitSync(ctx context.Context, dsn string) error {
	var last error = errors.New("no synchronous standby")
	for ctx.Err() == nil {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			var n int
			err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND sync_state = 'sync' AND state = 'streaming'", StandbyName).Scan(&n)
			conn.Close(ctx)
			if err == nil && n > 0 {
				return nil
			}
		}
		if err != nil {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func appendConf(data, conf string) error {
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func postmasterPID(data string) (int, error) {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pgtest: postmaster.pid in %s: %q", data, line)
	}
	return pid, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverUser returns the credential PostgreSQL's server programs run under:
// the postgres user when the tests run as root, else nil (the current user).
func serverUser() (*syscall.Credential, int, int, error) {
	if os.Getuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root needs the postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}
