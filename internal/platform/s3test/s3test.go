// Package s3test starts a private S3-compatible server (versitygw over a temp
// directory) on a free loopback port, with one bucket, for tests.
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/tooltest"
)

// Fixed test credentials; the server is private to one test and loopback only.
const (
	AccessKey = "keeltest"
	SecretKey = "keeltest-secret-key"
)

// Server is a running versitygw with one bucket.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Bucket   string
	Dir      string // the posix backend's root; Dir/Bucket/key is an object
	Client   *s3.Client
}

// Config is how application code reaches this server.
func (s *Server) Config() s3.Config {
	return s3.Config{Endpoint: s.Endpoint, Region: "us-east-1", AccessKeyID: AccessKey, SecretAccessKey: SecretKey}
}

// Start runs versitygw for t, creates bucket through the S3 API and stops
// the server when t ends.
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	bin := tooltest.Bin(t, "versitygw")
	port := redistest.FreePort(t)
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), Bucket: bucket, Dir: t.TempDir()}
	tooltest.NoInheritedFDs()
	cmd := exec.Command(bin, "--port", fmt.Sprintf("127.0.0.1:%d", port), "--quiet", "posix", s.Dir)
	// Keys through the environment keep them out of the process list.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("s3test: start versitygw: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("s3test: versitygw did not listen: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Client, err = s3.New(context.Background(), s.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Client.CreateBucket(context.Background(), bucket); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return s
}

// MustUpload stores the file at path under key.
func (s *Server) MustUpload(t testing.TB, key, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.Client.Upload(context.Background(), s.Bucket, key, f); err != nil {
		t.Fatal(err)
	}
}

// MustSetModTime backdates key: the posix backend reports a file's mtime as
// the object's LastModified, which the S3 API gives no way to set.
func (s *Server) MustSetModTime(t testing.TB, key string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(s.Dir, s.Bucket, filepath.FromSlash(key)), at, at); err != nil {
		t.Fatal(err)
	}
}
