package cluster

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"indelible.dev/internal/nettest"
	"indelible.dev/internal/pgtest"
)

const testLease = 2 * time.Second

// node is a Lease running in the test, with its changes collected.
type node struct {
	*Lease
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	changes []Change
}

func startNode(t *testing.T, dsn, name string) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Open(ctx, dsn, Options{Node: name, URL: "http://" + name + ".test:8080", Lease: testLease})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{Lease: l, done: make(chan struct{})}
	rctx, rcancel := context.WithCancel(context.Background())
	n.cancel = rcancel
	go func() {
		for c := range l.Changes() {
			n.mu.Lock()
			n.changes = append(n.changes, c)
			n.mu.Unlock()
		}
	}()
	go func() { l.Run(rctx); close(n.done) }()
	t.Cleanup(n.stop)
	return n
}

// stop ends the node's Run (as a crash would: the lease is not given up).
func (n *node) stop() {
	n.cancel()
	<-n.done
	n.Close()
}

func (n *node) roles() []Change {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Change(nil), n.changes...)
}

func waitActive(t *testing.T, n *node, within time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if e, ok := n.Holding(); ok {
			return e
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s not active within %v (status %+v, err %v)", n.opt.Node, within, n.Status(), n.Err())
	return 0
}

func exec1(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
}

func fenceEpoch(t *testing.T, dsn string) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var e int64
	if err := c.QueryRow(ctx, `SELECT epoch FROM indelible_fence`).Scan(&e); err != nil {
		t.Fatal(err)
	}
	return e
}

// initFence creates the fence row as the store does for a new log.
func initFence(t *testing.T, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Open(ctx, dsn, Options{Node: "init", URL: "http://init", Lease: testLease})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	exec1(t, dsn, `UPDATE indelible_fence SET size = 0, root = '\x00'`)
}

func TestOptionsRefused(t *testing.T) {
	ctx := context.Background()
	for _, o := range []Options{
		{Node: "", URL: "http://a", Lease: time.Second},
		{Node: strings.Repeat("n", MaxNodeName+1), URL: "http://a", Lease: time.Second},
		{Node: "a", URL: "http://a", Lease: time.Second / 2},
		{Node: "a", URL: "a:8080", Lease: time.Second},
		{Node: "a", URL: "", Lease: time.Second},
	} {
		if _, err := Open(ctx, "postgres://u@127.0.0.1:1/db", o); !errors.Is(err, ErrConfig) {
			t.Errorf("Open(%+v) = %v, want ErrConfig", o, err)
		}
	}
	_, err := Open(ctx, "postgres://u:s3cret-pw@127.0.0.1:1/db?sslmode=bogus", Options{Node: "a", URL: "http://a", Lease: time.Second})
	if !errors.Is(err, ErrConfig) || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("Open with a bad URL: %v (want ErrConfig, no password)", err)
	}
	if _, err := DSN("mysql://x", "a", "b", time.Second); !errors.Is(err, ErrConfig) {
		t.Errorf("DSN(mysql) = %v", err)
	}
	d, err := DSN("postgres://u@h:5/db?sslmode=disable", "n1", "abcd", 9*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(d)
	q := u.Query()
	if q.Get("application_name") != "indelible:n1:abcd" || q.Get("idle_in_transaction_session_timeout") != "4500" ||
		q.Get("sslmode") != "disable" || q.Get("connect_timeout") != "3" {
		t.Errorf("DSN = %s", d)
	}
}

// One node on a new store takes the lease at once, bumps the fence and
// keeps the lease for many lease periods by renewing it.
func TestLeaseSingleNode(t *testing.T) {
	dsn := pgtest.DSN(t)
	initFence(t, dsn)
	a := startNode(t, dsn, "a")
	e := waitActive(t, a, 5*time.Second)
	if e != 1 || fenceEpoch(t, dsn) != 1 {
		t.Fatalf("epoch %d, fence %d: want 1 and 1", e, fenceEpoch(t, dsn))
	}
	time.Sleep(3 * testLease)
	if e2, ok := a.Holding(); !ok || e2 != e {
		t.Fatalf("after 3 leases: holding %v epoch %d, want the lease kept at %d (err %v)", ok, e2, e, a.Err())
	}
	if r := a.roles(); len(r) != 1 || r[0] != (Change{Active, 1}) {
		t.Fatalf("changes %+v", r)
	}
	st := a.Status()
	if st.Role != Active || st.Active.Node != "a" || st.Active.URL != "http://a.test:8080" || st.Size != 0 {
		t.Fatalf("status %+v", st)
	}
}

// Two nodes: one is active, the other a standby that knows who is active;
// when the active one dies (its lease is not given up) the standby takes
// over once the lease has expired, not before, and within lease + 2s.
func TestLeaseTakeover(t *testing.T) {
	dsn := pgtest.DSN(t)
	initFence(t, dsn)
	a := startNode(t, dsn, "a")
	ea := waitActive(t, a, 5*time.Second)
	b := startNode(t, dsn, "b")
	time.Sleep(testLease) // b reads the lease at least twice
	if _, ok := b.Holding(); ok {
		t.Fatal("b is active while a holds the lease")
	}
	if st := b.Status(); st.Role != Standby || st.Active.Node != "a" || st.Epoch != ea {
		t.Fatalf("b's status %+v", st)
	}
	// While a renews, b sees the lease's end move on, never past it by
	// more than a read's delay (a forward to a is abandoned once it is).
	e1 := b.Status().Expires
	if left := time.Until(e1); left <= 0 || left > testLease+time.Second {
		t.Fatalf("b sees a's lease end in %v (lease %v)", left, testLease)
	}
	for deadline := time.Now().Add(3 * testLease); !b.Status().Expires.After(e1); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("b still sees a's lease end at %v (now %v): a renews it", e1, time.Now())
		}
	}
	if a.Status().Expires != (time.Time{}) {
		t.Fatalf("the active node reports its own lease's end as a standby's view: %+v", a.Status())
	}
	killed := time.Now()
	lastEnd := a.ValidUntil()
	a.stop()
	eb := waitActive(t, b, testLease+2*time.Second)
	took := time.Since(killed)
	if eb != ea+1 || fenceEpoch(t, dsn) != eb {
		t.Fatalf("b's epoch %d, fence %d, want %d", eb, fenceEpoch(t, dsn), ea+1)
	}
	if time.Now().Before(lastEnd) {
		t.Fatalf("b took over at %v, before a's lease could have ended", time.Until(lastEnd))
	}
	t.Logf("takeover %v after the kill (lease %v)", took, testLease)
}

// A frozen active node inside a commit (its transaction holds the fence's
// row) does not block the takeover: its sessions are ended, its commit
// fails.
func TestLeaseTakeoverFrozenCommit(t *testing.T) {
	dsn := pgtest.DSN(t)
	initFence(t, dsn)
	a := startNode(t, dsn, "a")
	ea := waitActive(t, a, 5*time.Second)
	// a's store session, frozen in the middle of a commit.
	ctx := context.Background()
	ad, _ := DSN(dsn, "a", a.instance, time.Hour) // no idle timeout to help
	c, err := pgx.Connect(ctx, ad)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tag, err := tx.Exec(ctx, `UPDATE indelible_fence SET size = size + 1 WHERE epoch = $1`, ea); err != nil || tag.RowsAffected() != 1 {
		t.Fatal(tag, err)
	}
	b := startNode(t, dsn, "b")
	killed := time.Now()
	a.stop()
	eb := waitActive(t, b, testLease+2*time.Second)
	t.Logf("takeover %v after the freeze", time.Since(killed))
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("the frozen commit went through after the takeover")
	}
	if fenceEpoch(t, dsn) != eb {
		t.Fatal("fence not bumped")
	}
}

// A node partitioned from the database stops holding its lease no later
// than one lease after its last renewal was sent, steps down, and the
// other node takes over; never are both holding at once.
func TestLeasePartition(t *testing.T) {
	dsn := pgtest.DSN(t)
	initFence(t, dsn)
	u, _ := url.Parse(dsn)
	px := nettest.NewProxy(t, u.Host)
	pu := *u
	pu.Host = px.Addr()
	a := startNode(t, pu.String(), "a")
	waitActive(t, a, 5*time.Second)
	b := startNode(t, dsn, "b")
	var both atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, ha := a.Holding()
			_, hb := b.Holding()
			if ha && hb {
				both.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(testLease / 2)
	cut := time.Now()
	px.Blackhole()
	for time.Since(cut) < testLease+100*time.Millisecond {
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := a.Holding(); ok {
		t.Fatal("a still holds its lease one lease after the partition")
	}
	waitActive(t, b, 3*time.Second)
	close(stop)
	wg.Wait()
	if n := both.Load(); n > 0 {
		t.Fatalf("both nodes held the lease at once (%d samples)", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := a.roles()
		if len(r) == 2 && r[1].Role == Standby {
			if st := a.Status(); st.Role != Standby || st.Active.Node == "a" {
				t.Fatalf("a's status after stepping down: %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's changes %+v: want active then standby", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Nodes racing for an expired lease: exactly one takes each epoch.
func TestLeaseRace(t *testing.T) {
	dsn := pgtest.DSN(t)
	initFence(t, dsn)
	var nodes []*node
	for _, n := range []string{"a", "b", "c", "d"} {
		nodes = append(nodes, startNode(t, dsn, n))
	}
	time.Sleep(testLease)
	active := 0
	for _, n := range nodes {
		if _, ok := n.Holding(); ok {
			active++
		}
	}
	if active != 1 {
		t.Fatalf("%d nodes active", active)
	}
}

// On an empty database the lease comes first: the fence's first row is
// created with it (size -1: no log yet), and the takeover bumps it, so the
// store opened next under that epoch finds it.
func TestLeaseEmptyDatabase(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := startNode(t, dsn, "a")
	e := waitActive(t, a, 5*time.Second)
	if e != 1 || fenceEpoch(t, dsn) != 1 {
		t.Fatalf("epoch %d, fence %d", e, fenceEpoch(t, dsn))
	}
}

// TestTakeoverRefusesSingleNode: while a node started without a lease holds
// the store's owner lock (pgkv.OwnerLock, the same key as ownerLock), a
// cluster node refuses to open, and a standby opened before does not take
// the expired lease (its takeover would bump the epoch and fence the single
// node off); once the lock is free, the standby takes over.
func TestTakeoverRefusesSingleNode(t *testing.T) {
	dsn := pgtest.DSN(t)
	initFence(t, dsn)
	a := startNode(t, dsn, "a")
	ea := waitActive(t, a, 3*testLease)
	b := startNode(t, dsn, "b")
	a.stop() // a crash: the lease expires
	ctx := context.Background()
	single, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close(ctx)
	if _, err := single.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(ownerLock)); err != nil {
		t.Fatal(err)
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = Open(octx, dsn, Options{Node: "c", URL: "http://c.test:8080", Lease: testLease})
	cancel()
	if !errors.Is(err, ErrSingleNode) {
		t.Fatalf("a cluster node's open while a single node holds the store: %v, want ErrSingleNode", err)
	}
	time.Sleep(testLease + time.Second)
	if _, ok := b.Holding(); ok || fenceEpoch(t, dsn) != ea {
		t.Fatalf("b took the lease (fence epoch %d, a's %d) while a single node holds the store; err %v", fenceEpoch(t, dsn), ea, b.Err())
	}
	if err := b.Err(); !errors.Is(err, ErrSingleNode) {
		t.Errorf("b's last error: %v, want ErrSingleNode", err)
	}
	if _, err := single.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(ownerLock)); err != nil {
		t.Fatal(err)
	}
	if eb := waitActive(t, b, 2*testLease); eb <= ea {
		t.Fatalf("b took epoch %d after a's %d", eb, ea)
	}
}
