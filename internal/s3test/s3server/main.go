// Command s3server is an S3-compatible server for tests, run as a separate
// process: gofakes3 over a directory (s3afero: persistent across restarts). It serves
// one bucket, path-style, without checking signatures, and answers GET
// without credentials, so the bucket can be read as a tlog-tiles log at
// http://ADDR/BUCKET/.
//
// gofakes3 (v1.2.0 and later) honours If-None-Match: * and If-Match on
// PutObject. -ignore-conditions strips both headers before gofakes3 sees
// them: a store that silently ignores conditional writes, which the mirror's
// start-up probe must refuse.
//
// gofakes3 keeps Content-Type but drops Cache-Control: the server keeps it
// as the user metadata X-Amz-Meta-Cache-Control and answers it back as
// Cache-Control, as S3 does.
//
// -versioning serves the bucket from memory (gofakes3's s3mem, the backend
// that implements S3 versioning) with versioning enabled: every replaced or
// deleted object's earlier versions are kept and listed (GET ?versions, GET
// ?versionId=), as a bucket under Object Lock keeps them. Not persistent.
//
// It prints "listening on http://ADDR" on stdout once it accepts
// connections, and runs until killed.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	dir := flag.String("dir", "", "directory holding the buckets (required)")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	bucket := flag.String("bucket", "log", "bucket created at start if missing")
	ignore := flag.Bool("ignore-conditions", false, "drop If-None-Match and If-Match from every request")
	versioning := flag.Bool("versioning", false, "keep every version of every object (in memory; -dir is not used)")
	flag.Parse()
	var be gofakes3.Backend
	if *versioning {
		mem := s3mem.New()
		if err := mem.CreateBucket(*bucket); err != nil {
			log.Fatal(err)
		}
		if err := mem.SetVersioningConfiguration(*bucket, gofakes3.VersioningConfiguration{Status: gofakes3.VersioningEnabled}); err != nil {
			log.Fatal(err)
		}
		be = mem
	} else {
		if *dir == "" {
			log.Fatal("s3server: -dir is required")
		}
		fs, err := s3afero.FsPath(*dir, s3afero.FsPathCreateAll)
		if err != nil {
			log.Fatal(err)
		}
		multi, err := s3afero.MultiBucket(fs)
		if err != nil {
			log.Fatal(err)
		}
		if err := multi.CreateBucket(*bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
			log.Fatal(err)
		}
		be = multi
	}
	h := keepCacheControl(gofakes3.New(be, gofakes3.WithAutoBucket(false)).Server())
	if *ignore {
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("If-None-Match")
			r.Header.Del("If-Match")
			next.ServeHTTP(w, r)
		})
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "listening on http://%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, h))
}

const metaCacheControl = "X-Amz-Meta-Cache-Control"

// keepCacheControl stores a PUT's Cache-Control as user metadata and serves
// it back as Cache-Control.
func keepCacheControl(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cc := r.Header.Get("Cache-Control"); cc != "" && r.Method == http.MethodPut {
			r.Header.Set(metaCacheControl, cc)
		}
		next.ServeHTTP(&cacheControlWriter{ResponseWriter: w}, r)
	})
}

type cacheControlWriter struct{ http.ResponseWriter }

func (w *cacheControlWriter) WriteHeader(code int) {
	h := w.Header()
	if cc := h.Get(metaCacheControl); cc != "" {
		h.Set("Cache-Control", cc)
		h.Del(metaCacheControl)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *cacheControlWriter) Write(b []byte) (int, error) {
	if w.Header().Get(metaCacheControl) != "" {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}
