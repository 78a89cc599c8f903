package pebblekv

import (
	"os"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// sstWriteBuffer is how many bytes of a table being written are gathered
// before one write(2). Pebble writes a table a block (~4 KiB) at a time
// through a 4 KiB bufio.Writer, so each block was a syscall of its own:
// on this machine 4 us per 4 KiB written so, 1 us in writes of 64 KiB or
// more (issue 21, BENCHMARKS.md "Ingest CPU, session 6"), and flushes and
// compactions write ~1.2 KB per event.
const sstWriteBuffer = 256 << 10

// sstBufferFS is fs whose created sstables (the ".sst" files: flush and
// compaction output) buffer their writes in sstWriteBuffer bytes. Every
// other file, the WAL above all, is fs's own, unwrapped: its writes and
// syncs are exactly pebble's. A table file is durable only once pebble has
// synced it (before the manifest names it), and the buffer is written out
// before every sync, read, stat and close, so what a sync covers is what
// pebble wrote.
type sstBufferFS struct{ vfs.FS }

// Create implements vfs.FS.
func (fs sstBufferFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !strings.HasSuffix(name, ".sst") {
		return f, err
	}
	return &bufferedFile{File: f, buf: sstBuffers.Get().(*[]byte)}, nil
}

// Unwrap returns the wrapped filesystem (pebble's vfs.FS helpers look
// through wrappers so).
func (fs sstBufferFS) Unwrap() vfs.FS { return fs.FS }

var sstBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, sstWriteBuffer)
	return &b
}}

// bufferedFile is a file whose writes are gathered in buf. The mutex makes
// it as safe for concurrent use as the file it wraps (pebble writes a table
// from one goroutine, but may sync it from another).
type bufferedFile struct {
	vfs.File
	mu  sync.Mutex
	buf *[]byte // nil once closed
	err error   // the first failed write of the buffer: every later call fails
}

// flushLocked writes out the buffer.
func (f *bufferedFile) flushLocked() error {
	if f.err != nil {
		return f.err
	}
	if f.buf == nil || len(*f.buf) == 0 {
		return nil
	}
	_, err := f.File.Write(*f.buf)
	*f.buf = (*f.buf)[:0]
	f.err = err
	return err
}

func (f *bufferedFile) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushLocked()
}

// Write implements io.Writer: p is copied into the buffer, or written
// through when it does not fit in an empty one.
func (f *bufferedFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	if f.buf == nil {
		return 0, os.ErrClosed
	}
	b := *f.buf
	if len(b)+len(p) > cap(b) {
		if err := f.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= cap(b) {
			n, err := f.File.Write(p)
			f.err = err
			return n, err
		}
		b = (*f.buf)[:0]
	}
	*f.buf = append(b, p...)
	return len(p), nil
}

func (f *bufferedFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *bufferedFile) Read(p []byte) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *bufferedFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *bufferedFile) Stat() (vfs.FileInfo, error) {
	if err := f.flush(); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *bufferedFile) Sync() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *bufferedFile) SyncData() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *bufferedFile) SyncTo(length int64) (bool, error) {
	if err := f.flush(); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}

// Close writes out the buffer, closes the file and returns the buffer to
// the pool.
func (f *bufferedFile) Close() error {
	f.mu.Lock()
	err := f.flushLocked()
	if f.buf != nil {
		*f.buf = (*f.buf)[:0]
		sstBuffers.Put(f.buf)
		f.buf = nil
	}
	f.mu.Unlock()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}
