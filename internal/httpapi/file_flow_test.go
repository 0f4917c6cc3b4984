package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/s3test"
)

// newFilesEnv is an env whose API and in-process worker store files in a
// private versitygw.
func newFilesEnv(t *testing.T) (*env, *s3test.Server) {
	t.Helper()
	srv := s3test.Start(t, "files")
	return newEnv(t, envOpts{storage: s3.Bucket{Client: srv.Client, Name: srv.Bucket}}), srv
}

// resource inserts a live resource of org (the resources endpoints are
// another capability's) and returns its ID.
func (e *env) resource(org string) string {
	e.t.Helper()
	id := uuid.NewString()
	e.db.Owner.MustExec(`INSERT INTO resources (org_id, id, name) VALUES ($1, $2, 'r')`, org, id)
	return id
}

type fileOut struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	RejectReason string `json:"reject_reason"`
	SHA256       string `json:"sha256"`
	Detected     string `json:"detected_content_type"`
	Download     *struct {
		URL string `json:"url"`
	} `json:"download"`
	Thumbnail *struct {
		URL string `json:"url"`
	} `json:"thumbnail"`
}

type uploadOut struct {
	File   fileOut `json:"file"`
	Upload struct {
		URL     string            `json:"url"`
		Method  string            `json:"method"`
		Headers map[string]string `json:"headers"`
	} `json:"upload"`
}

// announce creates a file through the API.
func (e *env) announce(tok, res, name, typ string, size int) uploadOut {
	e.t.Helper()
	var up uploadOut
	e.expect(req{method: "POST", path: "/api/v1/resources/" + res + "/files", token: tok,
		body: map[string]any{"filename": name, "content_type": typ, "size": size}}, 201, &up)
	return up
}

// putUpload sends body through the presigned URL with a plain HTTP client
// and the returned headers, and returns the status.
func putUpload(t *testing.T, up uploadOut, body []byte) int {
	t.Helper()
	r, err := http.NewRequest(up.Upload.Method, up.Upload.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range up.Upload.Headers {
		r.Header.Set(k, v)
	}
	r.ContentLength, _ = strconv.ParseInt(up.Upload.Headers["Content-Length"], 10, 64)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitFile polls GET /files/{id} until the worker moved it out of
// processing.
func (e *env) waitFile(tok, id string) fileOut {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var f fileOut
		e.expect(req{method: "GET", path: "/api/v1/files/" + id, token: tok}, 200, &f)
		if f.Status != "processing" {
			return f
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("file %s still processing", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) storageUsage(org string) int64 {
	e.t.Helper()
	var n int64
	e.db.Owner.Get(&n, postgrestest.UsageSQL, org, "storage_bytes")
	return n
}

func waitGone(t *testing.T, b s3.Bucket, keys ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, k := range keys {
		for {
			if _, err := b.Head(context.Background(), k); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("object %s still there", k)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), 100, uint8(y), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The acceptance path through the API and a real worker: announce, PUT
// through the presigned URL with a plain HTTP client, complete; the worker
// (outbox → Redis → file:process) marks the file ready with the right
// SHA-256 and a thumbnail of at most 256 px; the download answers with the
// filename as an RFC 6266 attachment; storage goes up on ready and down on
// delete, and the objects go.
func TestFileUploadFlow(t *testing.T) {
	t.Parallel()
	e, srv := newFilesEnv(t)
	bucket := s3.Bucket{Client: srv.Client, Name: srv.Bucket}
	a := e.signup("files-owner@example.com", "Owner", "Files Inc")
	res := e.resource(a.OrganizationID)
	body := testPNG(t, 300, 700)
	name := "Q3 \"final\"\nrésumé.png"
	up := e.announce(a.AccessToken, res, name, "image/png", len(body))
	if up.File.Status != "pending" || up.Upload.Method != "PUT" || up.Upload.Headers["Content-Type"] != "image/png" ||
		up.Upload.Headers["Content-Length"] != strconv.Itoa(len(body)) || !strings.Contains(up.Upload.URL, a.OrganizationID+"/files/"+up.File.ID) {
		t.Fatalf("upload %+v", up)
	}
	// The signature binds the declared length and type.
	longer := up
	longer.Upload.Headers = map[string]string{"Content-Type": "image/png", "Content-Length": strconv.Itoa(len(body) + 1)}
	if code := putUpload(t, longer, append(bytes.Clone(body), 0)); code != 403 {
		t.Fatalf("a longer body: %d, want 403", code)
	}
	if code := putUpload(t, up, body); code != 200 {
		t.Fatalf("PUT: %d", code)
	}
	var done fileOut
	e.expect(req{method: "POST", path: "/api/v1/files/" + up.File.ID + "/complete", token: a.AccessToken}, 202, &done)
	if done.Status != "processing" && done.Status != "ready" {
		t.Fatalf("after complete: %s", done.Status)
	}
	f := e.waitFile(a.AccessToken, up.File.ID)
	sum := sha256.Sum256(body)
	if f.Status != "ready" || f.SHA256 != hex.EncodeToString(sum[:]) || f.Detected != "image/png" || f.Download == nil || f.Thumbnail == nil {
		t.Fatalf("processed: %+v", f)
	}
	// Completing again is 202 and changes nothing.
	e.expect(req{method: "POST", path: "/api/v1/files/" + up.File.ID + "/complete", token: a.AccessToken}, 202, nil)
	if u := e.storageUsage(a.OrganizationID); u != int64(len(body)) {
		t.Fatalf("storage usage %d, want %d", u, len(body))
	}
	resp, err := http.Get(f.Download.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantDisp := `attachment; filename="Q3 _final_r_sum_.png"; filename*=UTF-8''Q3%20%22final%22r%C3%A9sum%C3%A9.png`
	if resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("Content-Disposition") != wantDisp {
		t.Fatalf("download: %d, %d bytes, Content-Disposition %q", resp.StatusCode, len(got), resp.Header.Get("Content-Disposition"))
	}
	resp, err = http.Get(f.Thumbnail.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := image.DecodeConfig(resp.Body)
	resp.Body.Close()
	if err != nil || cfg.Height != 256 || cfg.Width != 300*256/700 {
		t.Fatalf("thumbnail %dx%d: %v", cfg.Width, cfg.Height, err)
	}
	var page struct{ Data []fileOut }
	e.expect(req{method: "GET", path: "/api/v1/resources/" + res + "/files", token: a.AccessToken}, 200, &page)
	if len(page.Data) != 1 || page.Data[0].ID != up.File.ID || page.Data[0].Download != nil {
		t.Fatalf("list %+v", page.Data)
	}

	e.expect(req{method: "DELETE", path: "/api/v1/files/" + up.File.ID, token: a.AccessToken}, 204, nil)
	if u := e.storageUsage(a.OrganizationID); u != 0 {
		t.Fatalf("storage usage %d after delete", u)
	}
	orgID, fileID := uuid.MustParse(a.OrganizationID), uuid.MustParse(up.File.ID)
	waitGone(t, bucket, file.Key(orgID, fileID), file.ThumbnailKey(orgID, fileID))
	e.problem(req{method: "GET", path: "/api/v1/files/" + up.File.ID, token: a.AccessToken}, 404, "not_found")
}

// A file whose stored size differs from the declared one (written around
// the presigned URL) is rejected by the worker and its object deleted.
func TestFileSizeMismatchRejected(t *testing.T) {
	t.Parallel()
	e, srv := newFilesEnv(t)
	bucket := s3.Bucket{Client: srv.Client, Name: srv.Bucket}
	a := e.signup("mismatch@example.com", "Owner", "Mismatch Inc")
	res := e.resource(a.OrganizationID)
	up := e.announce(a.AccessToken, res, "notes.txt", "text/plain", 100)
	key := file.Key(uuid.MustParse(a.OrganizationID), uuid.MustParse(up.File.ID))
	if err := bucket.Put(context.Background(), key, "text/plain", bytes.Repeat([]byte("x"), 64)); err != nil {
		t.Fatal(err)
	}
	e.expect(req{method: "POST", path: "/api/v1/files/" + up.File.ID + "/complete", token: a.AccessToken}, 202, nil)
	f := e.waitFile(a.AccessToken, up.File.ID)
	if f.Status != "rejected" || f.RejectReason != "size mismatch: uploaded 64 bytes, declared 100" || f.Download != nil {
		t.Fatalf("processed: %+v", f)
	}
	waitGone(t, bucket, key)
	e.problem(req{method: "POST", path: "/api/v1/files/" + up.File.ID + "/complete", token: a.AccessToken}, 409, "file_rejected")
	if u := e.storageUsage(a.OrganizationID); u != 0 {
		t.Fatalf("storage usage %d", u)
	}
}

// Declarations are validated: the type against FILES_ALLOWED_TYPES, the
// size against FILES_MAX_BYTES; without a bucket the server says so.
func TestFileCreateProblems(t *testing.T) {
	t.Parallel()
	e, _ := newFilesEnv(t)
	a := e.signup("problems@example.com", "Owner", "Problems Inc")
	res := e.resource(a.OrganizationID)
	path := "/api/v1/resources/" + res + "/files"
	e.problem(req{method: "POST", path: path, token: a.AccessToken, body: map[string]any{"filename": "a.exe", "content_type": "application/x-msdownload", "size": 3}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: path, token: a.AccessToken, body: map[string]any{"filename": "a.txt", "content_type": "text/plain", "size": file.DefaultMaxBytes + 1}}, 413, "file_too_large")
	e.problem(req{method: "POST", path: path, token: a.AccessToken, body: map[string]any{"filename": "a.txt", "content_type": "text/plain", "size": 3, "path": "../x"}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: "/api/v1/resources/not-a-uuid/files", token: a.AccessToken, body: map[string]any{"filename": "a.txt", "content_type": "text/plain", "size": 3}}, 404, "not_found")

	off := newEnv(t, envOpts{})
	b := off.signup("nobucket@example.com", "Owner", "No Bucket Inc")
	off.problem(req{method: "POST", path: "/api/v1/resources/" + off.resource(b.OrganizationID) + "/files", token: b.AccessToken,
		body: map[string]any{"filename": "a.txt", "content_type": "text/plain", "size": 3}}, 503, "storage_not_configured")
}

// Org A's token and API key with org B's resource and file IDs get 404 on
// every file endpoint, B's file is unchanged, and no answer to A carries a
// URL of B's objects.
func TestCrossTenantFileIDs(t *testing.T) {
	t.Parallel()
	e, _ := newFilesEnv(t)
	a := e.signup("xa@example.com", "A", "Org A")
	b := e.signup("xb@example.com", "B", "Org B")
	bRes := e.resource(b.OrganizationID)
	body := []byte("org B's file")
	up := e.announce(b.AccessToken, bRes, "b.txt", "text/plain", len(body))
	if code := putUpload(t, up, body); code != 200 {
		t.Fatalf("PUT %d", code)
	}
	e.expect(req{method: "POST", path: "/api/v1/files/" + up.File.ID + "/complete", token: b.AccessToken}, 202, nil)
	if f := e.waitFile(b.AccessToken, up.File.ID); f.Status != "ready" {
		t.Fatalf("B's file: %+v", f)
	}
	_, aKey := e.apiKey(a.AccessToken, "a", "admin")
	snapshot := func() string {
		var s string
		e.db.Owner.Get(&s, `SELECT string_agg(id || status || filename || updated_at, ',') FROM files WHERE org_id = $1`, b.OrganizationID)
		return s
	}
	before := snapshot()
	for _, tok := range []string{a.AccessToken, aKey} {
		for _, r := range []req{
			{method: "POST", path: "/api/v1/resources/" + bRes + "/files", body: map[string]any{"filename": "x.txt", "content_type": "text/plain", "size": 3}},
			{method: "GET", path: "/api/v1/resources/" + bRes + "/files"},
			{method: "GET", path: "/api/v1/files/" + up.File.ID},
			{method: "POST", path: "/api/v1/files/" + up.File.ID + "/complete"},
			{method: "DELETE", path: "/api/v1/files/" + up.File.ID},
		} {
			r.token = tok
			w := e.problem(r, 404, "not_found")
			if strings.Contains(w.Body.String(), b.OrganizationID) || strings.Contains(w.Body.String(), "X-Amz") {
				t.Fatalf("%s %s answered A with B's keys: %s", r.method, r.path, w.Body.String())
			}
		}
	}
	if after := snapshot(); after != before {
		t.Fatalf("B's files changed:\n%s\n%s", before, after)
	}
}
