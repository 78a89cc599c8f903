package s3test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// WeedEnv names the environment variable holding the path of a SeaweedFS
// weed binary for StartWeed.
const WeedEnv = "INDELIBLE_TEST_WEED"

// WeedBinary returns the weed binary named by INDELIBLE_TEST_WEED, or skips
// the test when it is unset: weed takes about eight minutes to build, too
// slow for CI, which tests against gofakes3 (Start) instead.
func WeedBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(WeedEnv)
	if bin == "" {
		t.Skipf("%s is unset: set it to a SeaweedFS weed binary to run this test (building weed takes about eight minutes, "+
			"too slow for CI, which tests against gofakes3; see docs/ha.md, Testing it)", WeedEnv)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s=%s: %v", WeedEnv, bin, err)
	}
	return bin
}

// envValue is the value of k in Env.
func envValue(k string) string {
	for _, kv := range Env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

// freePorts returns n distinct free loopback ports (held together while
// chosen, then released for the server to take).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// StartWeed starts SeaweedFS (weed server: master, volume server, filer and
// S3 gateway in one process) on loopback ports, with a data directory in
// t.TempDir(), the access key and secret of Env as its one S3 identity (and
// anonymous reads, as the tests read objects over plain HTTP), and Bucket
// created. It is stopped at the end of the test. bin is WeedBinary's.
func StartWeed(t testing.TB, bin string) *Server {
	t.Helper()
	dir := t.TempDir()
	cfg, err := json.Marshal(map[string]any{"identities": []any{
		map[string]any{
			"name":        "indelible",
			"credentials": []any{map[string]string{"accessKey": envValue("AWS_ACCESS_KEY_ID"), "secretKey": envValue("AWS_SECRET_ACCESS_KEY")}},
			"actions":     []string{"Admin", "Read", "List", "Tagging", "Write"},
		},
		map[string]any{"name": "anonymous", "actions": []string{"Read", "List"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 8)
	port := func(i int) string { return strconv.Itoa(p[i]) }
	args := []string{"-logtostderr", "server",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
		"-master.port=" + port(0), "-master.port.grpc=" + port(1),
		"-master.volumeSizeLimitMB=64", "-master.telemetry=false",
		"-volume.port=" + port(2), "-volume.port.grpc=" + port(3), "-volume.max=16",
		"-filer", "-filer.port=" + port(4), "-filer.port.grpc=" + port(5),
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"),
		"-s3", "-s3.port=" + port(6), "-s3.port.grpc=" + port(7),
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		"-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
		"-s3.config=" + cfgFile,
	}
	logFile := filepath.Join(dir, "weed.log")
	lf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: "http://127.0.0.1:" + port(6), Addr: "127.0.0.1:" + port(6), Dir: dir, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("weed server %s; the end of its log:\n%s", strings.Join(args, " "), b)
		}
	})
	if err := s.weedReady(120 * time.Second); err != nil {
		t.Fatalf("weed server did not become ready: %v (log: %s)", err, logFile)
	}
	return s
}

// weedReady creates Bucket, retrying until the S3 gateway answers, then
// writes and deletes an object until the volume server takes writes.
func (s *Server) weedReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL),
		UsePathStyle: true,
		HTTPClient:   &http.Client{Timeout: 10 * time.Second},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: envValue("AWS_ACCESS_KEY_ID"), SecretAccessKey: envValue("AWS_SECRET_ACCESS_KEY")}, nil
		}),
		RetryMaxAttempts: 1,
	})
	try := func(f func() error) error {
		var err error
		for {
			if err = f(); err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return err
			case <-s.exited:
				return fmt.Errorf("weed exited: %w", err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	err := try(func() error {
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(Bucket)})
		var owned interface{ ErrorCode() string }
		if errors.As(err, &owned) && owned.ErrorCode() == "BucketAlreadyOwnedByYou" {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("creating bucket %s: %w", Bucket, err)
	}
	key := aws.String(".s3test-ready")
	if err := try(func() error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(Bucket), Key: key, Body: strings.NewReader("ready\n")})
		return err
	}); err != nil {
		return fmt.Errorf("writing a first object: %w", err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(Bucket), Key: key}); err != nil {
		return fmt.Errorf("deleting the first object: %w", err)
	}
	return nil
}
