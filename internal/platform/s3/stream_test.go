package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/s3test"
)

// randomReader yields n pseudo-random bytes (incompressible, like a
// compressed dump) and then, when fail is set, that error instead of EOF.
type randomReader struct {
	rng  *rand.ChaCha8
	left int64
	fail error
}

func newRandom(n int64, fail error) *randomReader {
	return &randomReader{rng: rand.NewChaCha8([32]byte{1}), left: n, fail: fail}
}

func (r *randomReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		if r.fail != nil {
			return 0, r.fail
		}
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, _ := r.rng.Read(p)
	r.left -= int64(n)
	return n, nil
}

func sum(t *testing.T, r io.Reader) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// A stream of 11 MiB in 5 MiB parts is three parts, stored as one object
// with exactly the bytes read, with and without per-part CRC32 checks.
func TestUploadStreamInParts(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, "stream")
	ctx := context.Background()
	const size = 11 << 20
	for _, checksums := range []bool{false, true} {
		srv.Client.Checksums = checksums
		key := "parts/" + map[bool]string{false: "plain", true: "crc32"}[checksums]
		up, err := srv.Client.UploadStream(ctx, srv.Bucket, key, newRandom(size, nil), s3.StreamOptions{PartSize: s3.MinPartSize, Concurrency: 2})
		if err != nil {
			t.Fatalf("checksums %t: %v", checksums, err)
		}
		if up.Parts != 3 || up.Size != size || !strings.HasSuffix(up.ETag, "-3") {
			t.Fatalf("checksums %t: uploaded %+v, want 3 parts of %d bytes and a multipart ETag", checksums, up, size)
		}
		var got bytes.Buffer
		if _, err := srv.Client.Download(ctx, srv.Bucket, key, &got); err != nil {
			t.Fatal(err)
		}
		if got.Len() != size || sum(t, &got) != sum(t, newRandom(size, nil)) {
			t.Fatalf("checksums %t: stored %d bytes that differ from the stream", checksums, got.Len())
		}
	}
}

func TestUploadStreamSmallAndEmpty(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, "stream")
	ctx := context.Background()
	for _, body := range []string{"PGDMP a small dump", ""} {
		up, err := srv.Client.UploadStream(ctx, srv.Bucket, "small", strings.NewReader(body), s3.StreamOptions{})
		if err != nil || up.Parts != 1 || up.Size != int64(len(body)) {
			t.Fatalf("%q: %+v, %v", body, up, err)
		}
		var got bytes.Buffer
		if _, err := srv.Client.Download(ctx, srv.Bucket, "small", &got); err != nil || got.String() != body {
			t.Fatalf("stored %q (%v), want %q", got.String(), err, body)
		}
	}
	if _, err := srv.Client.UploadStream(ctx, srv.Bucket, "x", strings.NewReader("x"), s3.StreamOptions{PartSize: 1 << 20}); err == nil {
		t.Fatal("a part size under S3's 5 MiB minimum was accepted")
	}
}

// A producer that fails after more than a part was sent (its pipe closed
// with an error), or a context that ends mid-stream, aborts the upload:
// no object, no multipart upload left holding parts.
func TestUploadStreamAbortsOnFailure(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, "stream")
	ctx := context.Background()
	opts := s3.StreamOptions{PartSize: s3.MinPartSize, Concurrency: 2}
	check := func(key string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) || !errors.Is(err, s3.ErrAborted) {
			t.Fatalf("%s: want %v and ErrAborted, got %v", key, want, err)
		}
		if _, err := (s3.Bucket{Client: srv.Client, Name: srv.Bucket}).Head(ctx, key); !errors.Is(err, s3.ErrNotFound) {
			t.Fatalf("%s: an object was left: %v", key, err)
		}
	}
	dumpFailed := errors.New("pg_dump: exit status 1: connection lost")
	_, err := srv.Client.UploadStream(ctx, srv.Bucket, "db/failed", newRandom(7<<20, dumpFailed), opts)
	check("db/failed", err, dumpFailed)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err = srv.Client.UploadStream(cctx, srv.Bucket, "db/canceled", &cancelAfter{r: newRandom(20<<20, nil), n: 6 << 20, cancel: cancel}, opts)
	check("db/canceled", err, context.Canceled)

	left, err := srv.Client.Uploads(ctx, srv.Bucket, "db/")
	if err != nil || len(left) != 0 {
		t.Fatalf("multipart uploads left: %v (%v)", left, err)
	}
}

// cancelAfter calls cancel once n bytes were read through it.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}
