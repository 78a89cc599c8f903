package eventstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"indelible.dev/event"
	"indelible.dev/ledger"
)

// The exports' cursors (package export) live under their own prefix:
//
//	'E' 'c' name   -> next(8): the next index export name has not delivered
//
// A cursor is an index, not event data, so it is stored in the clear.
const (
	prefixExport = 'E'
	exportCursor = 'c'
)

func exportCursorKey(name string) []byte {
	return append([]byte{prefixExport, exportCursor}, name...)
}

// ExportCursor returns the stored cursor of the named export: the first
// index it has not delivered (0 when it never delivered anything).
func (l *Layer) ExportCursor(name string) (int64, error) {
	v, err := l.log.GetExt(exportCursorKey(name))
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("events: reading the cursor of export %q: %w", name, err)
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: the cursor of export %q has %d bytes", ErrCorrupt, name, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// SetExportCursor stores the named export's cursor durably (a standalone
// write of the extension namespace; no log entry).
func (l *Layer) SetExportCursor(name string, next int64) error {
	if l.closed.Load() {
		return ErrClosed
	}
	if next < 0 {
		return fmt.Errorf("events: negative cursor %d for export %q", next, name)
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(next))
	return l.log.WriteExt(func(w ledger.Writer) error { return w.Set(exportCursorKey(name), v) })
}

// ExportCursors returns every stored export cursor by export name.
func (l *Layer) ExportCursors() (map[string]int64, error) {
	out := map[string]int64{}
	lo := []byte{prefixExport, exportCursor}
	hi := []byte{prefixExport, exportCursor + 1}
	var bad error
	err := l.log.ScanExt(lo, hi, false, func(k, v []byte) bool {
		if len(v) != 8 {
			bad = fmt.Errorf("%w: the cursor of export %q has %d bytes", ErrCorrupt, k[2:], len(v))
			return false
		}
		out[string(k[2:])] = int64(binary.BigEndian.Uint64(v))
		return true
	})
	if err == nil {
		err = bad
	}
	return out, err
}

// Published returns the published size of the log: the events below it
// are committed and readable.
func (l *Layer) Published() int64 {
	cp, _ := l.log.Published()
	return cp.N
}

// QueryMatches reports whether e passes q's filters (the same exact-match
// rules as List and Stream; the cursor and limit are ignored).
func QueryMatches(q *Query, e *event.Event) bool {
	f := filter{q: *q}
	return f.match(e)
}

// Origin returns the log's origin line.
func (l *Layer) Origin() string { return l.log.Origin() }
