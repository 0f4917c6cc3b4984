package s3_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/s3test"
)

func TestNewestDownloadAndEmpty(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, "backups")
	ctx := context.Background()
	c := srv.Client
	c.PageSize = 2 // three matching objects span two pages
	if _, err := c.Newest(ctx, srv.Bucket, "db/"); !errors.Is(err, s3.ErrEmpty) {
		t.Fatalf("empty prefix: want ErrEmpty, got %v", err)
	}
	dir := t.TempDir()
	for i, key := range []string{"db/a.dump", "db/b.dump", "db/c.dump", "other/z.dump"} {
		p := filepath.Join(dir, filepath.Base(key))
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1)), 0o600); err != nil {
			t.Fatal(err)
		}
		srv.MustUpload(t, key, p)
	}
	now := time.Now()
	// The newest sits on the first page, so a reader of one page only
	// would still pass; c.dump being newest would not tell either. Make the
	// last page's object the newest.
	srv.MustSetModTime(t, "db/a.dump", now.Add(-3*time.Hour))
	srv.MustSetModTime(t, "db/b.dump", now.Add(-2*time.Hour))
	srv.MustSetModTime(t, "db/c.dump", now.Add(-1*time.Hour))
	srv.MustSetModTime(t, "other/z.dump", now)
	o, err := c.Newest(ctx, srv.Bucket, "db/")
	if err != nil || o.Key != "db/c.dump" || o.Size != 3000 {
		t.Fatalf("newest: %+v, %v", o, err)
	}
	if age := now.Sub(o.LastModified); age < 59*time.Minute || age > 61*time.Minute {
		t.Fatalf("LastModified %s is not the file's mtime", o.LastModified)
	}
	var buf bytes.Buffer
	n, err := c.Download(ctx, srv.Bucket, o.Key, &buf)
	if err != nil || n != 3000 || !bytes.Equal(buf.Bytes(), bytes.Repeat([]byte{'c'}, 3000)) {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	if _, err := c.Download(ctx, srv.Bucket, "db/missing", &buf); err == nil {
		t.Fatal("download of a missing key succeeded")
	}
}

func TestNewDefaultsRegion(t *testing.T) {
	t.Parallel()
	c, err := s3.New(context.Background(), s3.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.S3.Options().Region; r != "us-east-1" {
		t.Fatalf("region %q", r)
	}
}
