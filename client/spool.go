package client

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// spoolSegment is how many events one spool file holds before the next is
// started; a file is deleted once each of its events is stored or refused.
const spoolSegment = 1000

// WithSpool writes every event Log and LogSync queue to a file in dir
// (created 0700) before queueing it, and deletes a file once each of its
// events is stored or refused. Log returns only once the event is on disk
// (the file fsynced, and the directory when the file is new; callers of
// Log at the same time share an fsync), so an event Log accepted survives
// the application's crash, a SIGKILL, or the machine's. New sends again the
// events a previous process left there (a crash, a kill, a Close whose
// context ended): their ids are set, so none is stored twice, provided the
// token is the same. A line a crash tore is skipped (its Log had not
// returned). One client at a time may use a spool directory: New
// refuses a directory another client holds (a lock file, on Unix).
func WithSpool(dir string) Option {
	return func(s *settings) { s.spoolDir = dir }
}

// spool is the write-ahead files of WithSpool. Each line is an event as
// JSON, or "-" and the id of an event Log did not queue after all.
type spool struct {
	dir     string
	lock    *os.File // held open while the spool is (lockSpool)
	mu      sync.Mutex
	cur     *os.File
	curSeg  int64
	count   int            // events in cur
	pending map[int64]int  // events of a segment not yet stored or refused
	closed  map[int64]bool // segments no longer written
	written int64          // lines written so far, in any file (mu)

	// Group commit: smu is held by the one goroutine fsyncing cur; synced
	// is how many of the lines written are on disk (smu). Lock order: smu,
	// then mu.
	smu    sync.Mutex
	synced int64
}

// syncFile and syncDir make a spool file's content, and a directory's
// entries, durable. Tests replace them.
var (
	syncFile = (*os.File).Sync
	syncDir  = func(dir string) error {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		return d.Sync()
	}
)

type spooled struct {
	ev  Event
	seg int64
}

func segName(seg int64) string { return fmt.Sprintf("spool-%012d.ndjson", seg) }

// openSpool opens dir and returns the events earlier processes left.
func openSpool(dir string) (*spool, []spooled, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("client: spool: %w", err)
		}
		// The new directory's entry, durable before any file in it is.
		if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return nil, nil, fmt.Errorf("client: spool: %w", err)
		}
	}
	lock, err := lockSpool(dir)
	if err != nil {
		return nil, nil, err
	}
	names, err := filepath.Glob(filepath.Join(dir, "spool-*.ndjson"))
	if err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("client: spool: %w", err)
	}
	sort.Strings(names)
	s := &spool{dir: dir, lock: lock, pending: map[int64]int{}, closed: map[int64]bool{}}
	var out []spooled
	for _, name := range names {
		seg, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), "spool-"), ".ndjson"), 10, 64)
		if err != nil {
			continue
		}
		s.curSeg = max(s.curSeg, seg+1)
		evs, err := readSegment(name)
		if err != nil {
			lock.Close()
			return nil, nil, err
		}
		s.closed[seg] = true
		if len(evs) == 0 {
			os.Remove(name)
			continue
		}
		s.pending[seg] = len(evs)
		for _, ev := range evs {
			out = append(out, spooled{ev, seg})
		}
	}
	return s, out, nil
}

// readSegment reads one spool file; a torn last line (a kill mid-write) is
// skipped.
func readSegment(name string) ([]Event, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("client: spool: %w", err)
	}
	defer f.Close()
	var evs []Event
	gone := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), MaxNDJSONLine)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 0 && line[0] == '-' {
			gone[string(line[1:])] = true
			continue
		}
		var ev Event
		if json.Unmarshal(line, &ev) != nil || ev.ID == "" {
			continue
		}
		evs = append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("client: spool %s: %w", name, err)
	}
	out := evs[:0]
	for _, ev := range evs {
		if !gone[ev.ID] {
			out = append(out, ev)
		}
	}
	return out, nil
}

// add writes ev (its id set) and returns its segment once the line is on
// disk.
func (s *spool) add(ev Event) (int64, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return 0, fmt.Errorf("client: spool: %w", err)
	}
	b = append(b, '\n')
	s.mu.Lock()
	if s.cur == nil || s.count >= spoolSegment {
		if err := s.rotate(); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
	if _, err := s.cur.Write(b); err != nil {
		// A part of the line may be in the file: write nothing more
		// there (the next line would be glued to it), start the next.
		s.retire()
		s.mu.Unlock()
		return 0, fmt.Errorf("client: spool: %w", err)
	}
	s.count++
	s.pending[s.curSeg]++
	s.written++
	seg, n := s.curSeg, s.written
	s.mu.Unlock()
	if err := s.sync(n); err != nil {
		s.mu.Lock()
		s.pending[seg]--
		s.gc(seg)
		s.mu.Unlock()
		return 0, err
	}
	return seg, nil
}

// sync returns once the first n lines written are on disk: at once if an
// fsync since covered them, else after one of its own, which covers every
// line written until it starts (those of other callers too).
func (s *spool) sync(n int64) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	for s.synced < n {
		s.mu.Lock()
		f, upTo := s.cur, s.written
		s.mu.Unlock()
		if f == nil {
			// Retired or closed since: rotate and close fsync a file
			// before they let it go.
			s.synced = max(s.synced, upTo)
			continue
		}
		if err := syncFile(f); err != nil {
			if errors.Is(err, os.ErrClosed) {
				continue // rotated meanwhile (and fsynced then): again, on the next
			}
			s.mu.Lock()
			if s.cur == f {
				s.retire()
			}
			s.mu.Unlock()
			return fmt.Errorf("client: spool: %w", err)
		}
		s.synced = max(s.synced, upTo)
	}
	return nil
}

// retire stops writing the current file (full, closing, or after a failed
// write or fsync): its events pending stay pending, and the next add starts
// a new file.
func (s *spool) retire() {
	s.cur.Close()
	s.cur = nil
	s.closed[s.curSeg] = true
	s.gc(s.curSeg)
	s.curSeg++
}

// rotate closes the current file, durable, and starts the next, whose
// directory entry it makes durable too.
func (s *spool) rotate() error {
	if s.cur != nil {
		err := syncFile(s.cur)
		s.retire()
		if err != nil {
			return fmt.Errorf("client: spool: %w", err)
		}
	}
	f, err := os.OpenFile(filepath.Join(s.dir, segName(s.curSeg)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("client: spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("client: spool: %w", err)
	}
	s.cur, s.count = f, 0
	return nil
}

// unqueued records that the event id of seg was not queued after all, on
// disk before it returns: Log answered an error, so a new client must not
// send it.
func (s *spool) unqueued(seg int64, id string) {
	s.mu.Lock()
	var n int64
	if seg == s.curSeg && s.cur != nil {
		if _, err := s.cur.Write([]byte("-" + id + "\n")); err != nil {
			s.retire()
		} else {
			s.written++
			n = s.written
		}
	}
	s.pending[seg]--
	s.gc(seg)
	s.mu.Unlock()
	if n > 0 {
		s.sync(n) // if it fails, a new client may send the event: stored, not lost
	}
}

// done records that an event of seg is stored or refused.
func (s *spool) done(seg int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[seg]--
	s.gc(seg)
}

// gc deletes seg's file once it is closed and none of its events pending.
func (s *spool) gc(seg int64) {
	if s.closed[seg] && s.pending[seg] <= 0 {
		os.Remove(filepath.Join(s.dir, segName(seg)))
		delete(s.pending, seg)
		delete(s.closed, seg)
	}
}

// close closes the current file, durable, deleting it if nothing of it is
// pending.
func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		syncFile(s.cur)
		s.retire()
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}
