package mirror

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Location is a parsed --bucket URL:
// s3://NAME?endpoint=URL&region=R&path_style=true.
type Location struct {
	Bucket    string
	Endpoint  string // "" means the SDK's (AWS S3)
	Region    string // "" means the SDK's usual configuration (AWS_REGION, files)
	PathStyle bool
}

// ParseLocation parses a bucket URL. Only the query parameters endpoint,
// region and path_style are accepted, each at most once.
func ParseLocation(s string) (Location, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Location{}, fmt.Errorf("mirror: bucket URL %q: %w", s, err)
	}
	if u.Scheme != "s3" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.Fragment != "" {
		return Location{}, fmt.Errorf("mirror: bucket URL %q: want s3://NAME?endpoint=URL&region=R&path_style=true", s)
	}
	loc := Location{Bucket: u.Host}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Location{}, fmt.Errorf("mirror: bucket URL %q: %w", s, err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return Location{}, fmt.Errorf("mirror: bucket URL %q: %s given %d times", s, k, len(v))
		}
		switch k {
		case "endpoint":
			e, err := url.Parse(v[0])
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return Location{}, fmt.Errorf("mirror: bucket URL %q: endpoint %q is not an http(s) URL", s, v[0])
			}
			loc.Endpoint = v[0]
		case "region":
			loc.Region = v[0]
		case "path_style":
			if loc.PathStyle, err = strconv.ParseBool(v[0]); err != nil {
				return Location{}, fmt.Errorf("mirror: bucket URL %q: path_style %q: want true or false", s, v[0])
			}
		default:
			return Location{}, fmt.Errorf("mirror: bucket URL %q: unknown parameter %q (known: endpoint, region, path_style)", s, k)
		}
	}
	return loc, nil
}

// bucket is the S3 operations the mirror uses.
type bucket struct {
	c    *s3.Client
	name string
}

// Cache-Control values (c2sp.org/tlog-tiles): a tile at its path never
// changes; the checkpoint does, so caches must revalidate it.
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheNoCache   = "no-cache"
	typeTile       = "application/octet-stream"
	typeCheckpoint = "text/plain; charset=utf-8"
)

// errPrecondition is a 412 (or the 409 S3 answers to a conditional write
// racing another): the condition did not hold.
var errPrecondition = errors.New("precondition failed")

// errNotFound is a 404.
var errNotFound = errors.New("no such object")

func newBucket(ctx context.Context, loc Location, hc *http.Client) (*bucket, error) {
	var opts []func(*config.LoadOptions) error
	if loc.Region != "" {
		opts = append(opts, config.WithRegion(loc.Region))
	}
	if hc != nil {
		opts = append(opts, config.WithHTTPClient(hc))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("mirror: loading the AWS configuration: %w", err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if loc.Endpoint != "" {
			o.BaseEndpoint = aws.String(loc.Endpoint)
		}
		o.UsePathStyle = loc.PathStyle
		// Checksums only where S3 requires them: S3-compatible servers
		// differ in what they make of the SDK's default trailers.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &bucket{c: c, name: loc.Bucket}, nil
}

// status classifies an SDK error by HTTP status.
func status(err error) error {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusPreconditionFailed, http.StatusConflict:
			return fmt.Errorf("%w: %w", errPrecondition, err)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %w", errNotFound, err)
		}
	}
	return err
}

// put writes key. With create it sends If-None-Match: * (create-only); with
// a non-empty ifMatch it sends If-Match. It returns the new ETag.
func (b *bucket) put(ctx context.Context, key string, data []byte, contentType, cache string, create bool, ifMatch string) (string, error) {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(b.name),
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String(contentType),
		CacheControl:  aws.String(cache),
	}
	if create {
		in.IfNoneMatch = aws.String("*")
	}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := b.c.PutObject(ctx, in)
	if err != nil {
		return "", fmt.Errorf("putting %s: %w", key, status(err))
	}
	return aws.ToString(out.ETag), nil
}

// get reads key and its ETag; errNotFound if it does not exist.
func (b *bucket) get(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	out, err := b.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		return nil, "", fmt.Errorf("getting %s: %w", key, status(err))
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("getting %s: %w", key, err)
	}
	if int64(len(data)) > limit {
		return nil, "", fmt.Errorf("getting %s: larger than %d bytes", key, limit)
	}
	return data, aws.ToString(out.ETag), nil
}

// list calls f with every key under prefix.
func (b *bucket) list(ctx context.Context, prefix string, f func(key string) error) error {
	p := s3.NewListObjectsV2Paginator(b.c, &s3.ListObjectsV2Input{Bucket: aws.String(b.name), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing %s: %w", prefix, status(err))
		}
		for _, o := range page.Contents {
			if err := f(aws.ToString(o.Key)); err != nil {
				return err
			}
		}
	}
	return nil
}

// probePrefix holds the objects of the start-up probe.
const probePrefix = ".indelible-probe/"

// probe checks that the bucket honours If-None-Match: * and If-Match on
// PutObject, on an object of its own: without them create-only writes and
// the compare-and-swap of the checkpoint mean nothing, so the node must not
// run. Under Object Lock the probe object cannot be deleted; it is small.
func (b *bucket) probe(ctx context.Context) error {
	var r [8]byte
	rand.Read(r[:])
	key := probePrefix + hex.EncodeToString(r[:])
	etag, err := b.put(ctx, key, []byte("first\n"), typeCheckpoint, cacheNoCache, true, "")
	if err != nil {
		return fmt.Errorf("mirror: probing bucket %s: %w", b.name, err)
	}
	defer b.c.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	_, err = b.put(ctx, key, []byte("second\n"), typeCheckpoint, cacheNoCache, true, "")
	if err == nil {
		return fmt.Errorf("mirror: bucket %s ignores If-None-Match: * on PutObject (it overwrote an existing object): "+
			"it cannot hold a log that must never change; use a store that honours conditional writes", b.name)
	}
	if !errors.Is(err, errPrecondition) {
		return fmt.Errorf("mirror: probing bucket %s: %w", b.name, err)
	}
	wrong := `"` + strings.Repeat("0", 32) + `"`
	if etag == wrong {
		wrong = `"` + strings.Repeat("1", 32) + `"`
	}
	_, err = b.put(ctx, key, []byte("third\n"), typeCheckpoint, cacheNoCache, false, wrong)
	if err == nil {
		return fmt.Errorf("mirror: bucket %s ignores If-Match on PutObject (it replaced an object whose ETag did not match): "+
			"the checkpoint object could go backwards; use a store that honours conditional writes", b.name)
	}
	if !errors.Is(err, errPrecondition) {
		return fmt.Errorf("mirror: probing bucket %s: %w", b.name, err)
	}
	if _, err = b.put(ctx, key, []byte("fourth\n"), typeCheckpoint, cacheNoCache, false, etag); err != nil {
		return fmt.Errorf("mirror: probing bucket %s: If-Match with the object's own ETag: %w", b.name, err)
	}
	return nil
}
