package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/s3test"
)

// send sends a presigned request with body and headers, overriding some.
func send(t *testing.T, p s3.Presigned, body []byte, override map[string]string) *http.Response {
	t.Helper()
	r, err := http.NewRequest(p.Method, p.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range p.Header {
		r.Header[k] = v
	}
	for k, v := range override {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	if v := r.Header.Get("Content-Length"); v != "" {
		r.ContentLength, _ = strconv.ParseInt(v, 10, 64)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// The presigned PUT binds the content type and length: the server refuses
// a PUT through the URL with another of either, and accepts the declared
// one.
func TestPresignedPutBindsTypeAndLength(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, "files")
	ctx := context.Background()
	b := s3.Bucket{Client: srv.Client, Name: srv.Bucket}
	body := []byte("hello, presigned world")
	p, err := b.PresignPut(ctx, "orgs/x/files/y", "text/plain", int64(len(body)), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != http.MethodPut || p.Header.Get("Content-Type") != "text/plain" || p.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Fatalf("presigned %s with headers %v", p.Method, p.Header)
	}
	longer := append(bytes.Clone(body), '!')
	if resp := send(t, p, longer, map[string]string{"Content-Length": strconv.Itoa(len(longer))}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT with another Content-Length: %d, want 403", resp.StatusCode)
	}
	if resp := send(t, p, body, map[string]string{"Content-Type": "text/html"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT with another Content-Type: %d, want 403", resp.StatusCode)
	}
	if _, err := b.Head(ctx, "orgs/x/files/y"); !errors.Is(err, s3.ErrNotFound) {
		t.Fatalf("a refused PUT stored something: %v", err)
	}
	if resp := send(t, p, body, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT as signed: %d", resp.StatusCode)
	}
	info, err := b.Head(ctx, "orgs/x/files/y")
	if err != nil || info.Size != int64(len(body)) || info.ContentType != "text/plain" {
		t.Fatalf("head: %+v %v", info, err)
	}
	// The URL writes once: other bytes of the same type and length sent
	// through it again (after the worker checked the first) are refused,
	// and so is the same request without the signed If-None-Match.
	swapped := bytes.Repeat([]byte("x"), len(body))
	if resp := send(t, p, swapped, nil); resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("second PUT through the URL: %d, want 412", resp.StatusCode)
	}
	if resp := send(t, p, swapped, map[string]string{"If-None-Match": ""}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT without the signed If-None-Match: %d, want 403", resp.StatusCode)
	}
	rc, err := b.Open(ctx, "orgs/x/files/y")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("read back %q", got)
	}
	if err := b.Delete(ctx, "orgs/x/files/y", "orgs/x/files/never"); err != nil {
		t.Fatalf("delete (one missing): %v", err)
	}
	if _, err := b.Open(ctx, "orgs/x/files/y"); !errors.Is(err, s3.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// A presigned GET answers with the Content-Disposition it was signed with.
func TestPresignedGetDisposition(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, "files")
	ctx := context.Background()
	b := s3.Bucket{Client: srv.Client, Name: srv.Bucket}
	if err := b.Put(ctx, "k", "text/plain", []byte("x")); err != nil {
		t.Fatal(err)
	}
	const disp = `attachment; filename="a_b.txt"; filename*=UTF-8''a%22b.txt`
	p, err := b.PresignGet(ctx, "k", disp, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != disp {
		t.Fatalf("GET: %d, Content-Disposition %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
}
