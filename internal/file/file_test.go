package file_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/file/filedb"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/platform/clock/clocktest"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/s3test"
	"github.com/keelhq/keel/internal/tenant"
	"github.com/keelhq/keel/jobs/task"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// fixture is two organizations, each with an owner, a member and a live
// resource (A also has a soft-deleted one), a real S3 server and the
// service under a fake clock.
type fixture struct {
	db           *postgrestest.DB
	srv          *s3test.Server
	bucket       s3.Bucket
	files        *file.Service
	clock        *clocktest.Fake
	orgA, orgB   uuid.UUID
	ownerA, memA uuid.UUID
	ownerB       uuid.UUID
	resA, resB   uuid.UUID
	deletedA     uuid.UUID
	ctx          context.Context
	meta         audit.Meta
}

func newFixture(t *testing.T, storageLimit int64) *fixture {
	t.Helper()
	f := &fixture{db: postgrestest.New(t), srv: s3test.Start(t, "files"), clock: clocktest.New(time.Now().UTC().Truncate(time.Microsecond)),
		orgA: uuid.New(), orgB: uuid.New(), ownerA: uuid.New(), memA: uuid.New(), ownerB: uuid.New(),
		resA: uuid.New(), resB: uuid.New(), deletedA: uuid.New(), ctx: context.Background(), meta: audit.Meta{IP: "203.0.113.9", UserAgent: "test"}}
	f.bucket = s3.Bucket{Client: f.srv.Client, Name: f.srv.Bucket}
	o := f.db.Owner
	o.MustExec(`INSERT INTO organizations (id, name) VALUES ($1, 'A'), ($2, 'B')`, f.orgA, f.orgB)
	o.MustExec(`INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'oa@x.test', 'OA', 'x'), ($2, 'ma@x.test', 'MA', 'x'), ($3, 'ob@x.test', 'OB', 'x')`,
		f.ownerA, f.memA, f.ownerB)
	o.MustExec(`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'member'), ($4, $5, 'owner')`,
		f.orgA, f.ownerA, f.memA, f.orgB, f.ownerB)
	o.MustExec(`INSERT INTO resources (org_id, id, name) VALUES ($1, $2, 'ra'), ($3, $4, 'rb')`, f.orgA, f.resA, f.orgB, f.resB)
	o.MustExec(`INSERT INTO resources (org_id, id, name, deleted_at) VALUES ($1, $2, 'gone', now())`, f.orgA, f.deletedA)
	p := plan.Plan{ID: "test", Name: "Test", Limits: plan.Limits{Seats: plan.Unlimited, Resources: plan.Unlimited,
		StorageBytes: storageLimit, APIRequestsPerMinute: plan.Unlimited}}
	f.files = &file.Service{DB: f.db.App, Store: filedb.Store{}, Objects: f.bucket, Now: f.clock.Now,
		Limiter: &plan.Limiter{Plans: plan.Fixed{Plan: p}, Store: plandb.Store{}}}
	return f
}

func (f *fixture) user(id, org uuid.UUID) *tenant.Principal {
	return &tenant.Principal{UserID: id, OrgID: org, Role: tenant.RoleMember}
}

// upload announces a file as p and PUTs body through the presigned URL
// with a plain HTTP client, sending the returned headers.
func (f *fixture) upload(t *testing.T, p *tenant.Principal, res uuid.UUID, name, typ string, body []byte) *file.File {
	t.Helper()
	up, err := f.files.Create(f.ctx, p, res, file.NewFile{Filename: name, ContentType: typ, Size: int64(len(body))}, f.meta)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if code := put(t, up.Put, body); code != http.StatusOK {
		t.Fatalf("PUT through the presigned URL: %d", code)
	}
	return up.File
}

func put(t *testing.T, p s3.Presigned, body []byte) int {
	t.Helper()
	r, err := http.NewRequest(p.Method, p.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k := range p.Header {
		r.Header.Set(k, p.Header.Get(k))
	}
	r.ContentLength, _ = strconv.ParseInt(p.Header.Get("Content-Length"), 10, 64)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// row reads a file as the owner (outside RLS).
func (f *fixture) row(t *testing.T, id uuid.UUID) (status, reason, sha string, thumb bool) {
	t.Helper()
	var s struct {
		Status string  `db:"status"`
		Reason string  `db:"reject_reason"`
		SHA    *string `db:"sha256"`
		Thumb  bool    `db:"has_thumbnail"`
	}
	if err := f.db.Owner.Get(&s, `SELECT status, reject_reason, sha256, has_thumbnail FROM files WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if s.SHA != nil {
		sha = *s.SHA
	}
	return s.Status, s.Reason, sha, s.Thumb
}

func (f *fixture) usage(t *testing.T, org uuid.UUID) int64 {
	t.Helper()
	var n int64
	if err := f.db.Owner.Get(&n, postgrestest.UsageSQL, org, "storage_bytes"); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := f.bucket.Head(f.ctx, key)
	if err != nil && !errors.Is(err, s3.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// deleteTasks returns the file IDs of org's file:delete-objects outbox
// rows that run at once.
func (f *fixture) deleteTasks(t *testing.T, org uuid.UUID) [][]uuid.UUID {
	t.Helper()
	var payloads [][]byte
	if err := f.db.Owner.Select(&payloads, `SELECT payload FROM outbox WHERE task_type = $1 AND headers->>'org_id' = $2 AND process_at IS NULL ORDER BY id`,
		task.TypeFileDeleteObjects, org.String()); err != nil {
		t.Fatal(err)
	}
	var out [][]uuid.UUID
	for _, b := range payloads {
		var p task.FileDeleteObjectsPayload
		if err := jsonUnmarshal(b, &p); err != nil || p.OrgID != org {
			t.Fatalf("payload %s: %v", b, err)
		}
		out = append(out, p.FileIDs)
	}
	return out
}

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The whole path: announce, PUT through the presigned URL with a plain
// HTTP client, complete, process; the file is ready with the right SHA-256
// and a thumbnail of at most 256 px, and counted; deleting it frees the
// storage and its objects.
func TestUploadProcessDownloadDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	body := pngOf(t, 600, 300)
	fl := f.upload(t, f.user(f.memA, f.orgA), f.resA, "chart.png", "image/png", body)
	if fl.Status != file.StatusPending || fl.Size != int64(len(body)) {
		t.Fatalf("created %+v", fl)
	}
	done, err := f.files.Complete(f.ctx, f.user(f.memA, f.orgA), fl.ID, f.meta)
	if err != nil || done.CompletedAt == nil {
		t.Fatalf("complete: %+v %v", done, err)
	}
	var queued int
	f.db.Owner.Get(&queued, `SELECT count(*) FROM outbox WHERE task_type = $1 AND headers->>'org_id' = $2`, task.TypeFileProcess, f.orgA.String())
	if queued != 1 {
		t.Fatalf("%d file:process tasks queued", queued)
	}
	// Completing again is idempotent: no second task.
	if _, err := f.files.Complete(f.ctx, f.user(f.ownerA, f.orgA), fl.ID, f.meta); err != nil {
		t.Fatal(err)
	}
	f.db.Owner.Get(&queued, `SELECT count(*) FROM outbox WHERE task_type = $1`, task.TypeFileProcess)
	if queued != 1 {
		t.Fatalf("a second complete queued another task (%d)", queued)
	}
	if err := f.files.Process(f.ctx, f.orgA, fl.ID); err != nil {
		t.Fatalf("process: %v", err)
	}
	sum := sha256.Sum256(body)
	status, reason, sha, thumb := f.row(t, fl.ID)
	if status != "ready" || sha != hex.EncodeToString(sum[:]) || !thumb {
		t.Fatalf("after process: %s %q sha %s thumbnail %v", status, reason, sha, thumb)
	}
	if u := f.usage(t, f.orgA); u != int64(len(body)) {
		t.Fatalf("storage usage %d, want %d", u, len(body))
	}
	// Duplicate delivery changes nothing and counts nothing twice.
	if err := f.files.Process(f.ctx, f.orgA, fl.ID); err != nil {
		t.Fatal(err)
	}
	if u := f.usage(t, f.orgA); u != int64(len(body)) {
		t.Fatalf("storage usage %d after a second run", u)
	}

	d, err := f.files.Get(f.ctx, f.user(f.memA, f.orgA), fl.ID)
	if err != nil || d.URL == nil || d.Thumbnail == nil {
		t.Fatalf("get: %+v %v", d, err)
	}
	resp, err := http.Get(d.URL.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("Content-Disposition") != `attachment; filename="chart.png"` {
		t.Fatalf("download: %d, %d bytes, disposition %q", resp.StatusCode, len(got), resp.Header.Get("Content-Disposition"))
	}
	resp, err = http.Get(d.Thumbnail.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg, format, err := image.DecodeConfig(resp.Body)
	resp.Body.Close()
	if err != nil || cfg.Width != 256 || cfg.Height != 128 {
		t.Fatalf("thumbnail %s %dx%d: %v", format, cfg.Width, cfg.Height, err)
	}

	// Another member may not delete it; the uploader may.
	other := uuid.New()
	f.db.Owner.MustExec(`INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'm2@x.test', 'M2', 'x')`, other)
	f.db.Owner.MustExec(`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'member')`, f.orgA, other)
	if err := f.files.Delete(f.ctx, f.user(other, f.orgA), fl.ID, f.meta); apperr.KindOf(err) != apperr.Forbidden {
		t.Fatalf("another member deleting: %v", err)
	}
	if err := f.files.Delete(f.ctx, f.user(f.memA, f.orgA), fl.ID, f.meta); err != nil {
		t.Fatal(err)
	}
	if u := f.usage(t, f.orgA); u != 0 {
		t.Fatalf("storage usage %d after delete", u)
	}
	tasks := f.deleteTasks(t, f.orgA)
	if len(tasks) != 1 || len(tasks[0]) != 1 || tasks[0][0] != fl.ID {
		t.Fatalf("delete tasks %v", tasks)
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := f.files.DeleteObjects(f.ctx, f.orgA, tasks[0]); err != nil {
			t.Fatal(err)
		}
	}
	if f.exists(t, file.Key(f.orgA, fl.ID)) || f.exists(t, file.ThumbnailKey(f.orgA, fl.ID)) {
		t.Fatal("objects left after file:delete-objects")
	}
	if _, err := f.files.Get(f.ctx, f.user(f.memA, f.orgA), fl.ID); !errors.Is(err, file.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	var actions []string
	f.db.Owner.Select(&actions, `SELECT action FROM audit_log WHERE org_id = $1 AND target_id = $2 ORDER BY created_at, action`, f.orgA, fl.ID.String())
	for _, want := range []string{"file.created", "file.completed", "file.ready", "file.deleted"} {
		found := false
		for _, a := range actions {
			found = found || a == want
		}
		if !found {
			t.Errorf("audit log %v lacks %s", actions, want)
		}
	}
}

// An object whose size is not the declared one (written around the
// presigned URL) is rejected and deleted; so is one never uploaded, and
// one whose bytes are not what it was declared as. A rejected file cannot
// be completed again.
func TestRejections(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	p := f.user(f.memA, f.orgA)
	announce := func(name, typ string, size int) *file.File {
		up, err := f.files.Create(f.ctx, p, f.resA, file.NewFile{Filename: name, ContentType: typ, Size: int64(size)}, f.meta)
		if err != nil {
			t.Fatal(err)
		}
		return up.File
	}
	short := announce("a.txt", "text/plain", 100)
	if err := f.bucket.Put(f.ctx, file.Key(f.orgA, short.ID), "text/plain", bytes.Repeat([]byte("a"), 99)); err != nil {
		t.Fatal(err)
	}
	never := announce("b.txt", "text/plain", 10)
	html := []byte("<!DOCTYPE html><html><script>alert(1)</script></html>")
	disguised := f.upload(t, p, f.resA, "c.txt", "text/plain", html)
	liar := f.upload(t, p, f.resA, "d.png", "image/png", []byte("this is not a png at all, just some text"))
	for _, c := range []struct {
		f    *file.File
		want string
	}{
		{short, "size mismatch: uploaded 99 bytes, declared 100"},
		{never, "not uploaded: no object was found for this file"},
		{disguised, "content type text/html is not allowed"},
		{liar, "declared as image/png but the content is text/plain"},
	} {
		if _, err := f.files.Complete(f.ctx, p, c.f.ID, f.meta); err != nil {
			t.Fatal(err)
		}
		if err := f.files.Process(f.ctx, f.orgA, c.f.ID); err != nil {
			t.Fatalf("%s: %v", c.f.Filename, err)
		}
		status, reason, _, _ := f.row(t, c.f.ID)
		if status != "rejected" || reason != c.want {
			t.Errorf("%s: %s %q, want rejected %q", c.f.Filename, status, reason, c.want)
		}
		if f.exists(t, file.Key(f.orgA, c.f.ID)) {
			t.Errorf("%s: object kept after rejection", c.f.Filename)
		}
		if _, err := f.files.Complete(f.ctx, p, c.f.ID, f.meta); !errors.Is(err, file.ErrRejected) {
			t.Errorf("%s: completing a rejected file: %v", c.f.Filename, err)
		}
		d, err := f.files.Get(f.ctx, p, c.f.ID)
		if err != nil || d.URL != nil {
			t.Errorf("%s: a rejected file got a download URL (%v)", c.f.Filename, err)
		}
	}
	if u := f.usage(t, f.orgA); u != 0 {
		t.Fatalf("rejected files counted: %d", u)
	}
}

// Declarations are checked before anything is stored: type, size, name,
// the resource (live, of the caller's organization) and the storage limit.
func TestCreateValidates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1000)
	p := f.user(f.memA, f.orgA)
	create := func(res uuid.UUID, name, typ string, size int64) error {
		_, err := f.files.Create(f.ctx, p, res, file.NewFile{Filename: name, ContentType: typ, Size: size}, f.meta)
		return err
	}
	for _, c := range []struct {
		name, typ string
		size      int64
		res       uuid.UUID
		kind      apperr.Kind
		code      string
	}{
		{"a.exe", "application/x-msdownload", 10, f.resA, apperr.Invalid, "validation_failed"},
		{"a.txt", "text/plain; charset=utf-8", 10, f.resA, apperr.Invalid, "validation_failed"},
		{"", "text/plain", 10, f.resA, apperr.Invalid, "validation_failed"},
		{"a.txt", "text/plain", 0, f.resA, apperr.Invalid, "validation_failed"},
		{"a.txt", "text/plain", file.DefaultMaxBytes + 1, f.resA, apperr.TooLarge, "file_too_large"},
		{"a.txt", "text/plain", 1001, f.resA, apperr.PaymentRequired, "plan_limit_reached"},
		{"a.txt", "text/plain", 10, f.deletedA, apperr.NotFound, "not_found"},
		{"a.txt", "text/plain", 10, f.resB, apperr.NotFound, "not_found"},
		{"a.txt", "text/plain", 10, uuid.New(), apperr.NotFound, "not_found"},
	} {
		err := create(c.res, c.name, c.typ, c.size)
		e, ok := apperr.As(err)
		if !ok || e.Kind != c.kind || e.Code != c.code {
			t.Errorf("%q %q %d: %v, want %s", c.name, c.typ, c.size, err, c.code)
		}
	}
	var n int
	f.db.Owner.Get(&n, `SELECT count(*) FROM files`)
	if n != 0 {
		t.Fatalf("%d files stored by refused creates", n)
	}
}

// Storage is counted when a file becomes ready, race-free: of files that
// each fit but together pass the limit, the ones processed past it are
// rejected with the reason, and their objects deleted.
func TestStorageLimitAtReady(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100)
	p := f.user(f.memA, f.orgA)
	var fs []*file.File
	for i := 0; i < 4; i++ {
		fs = append(fs, f.upload(t, p, f.resA, "f.txt", "text/plain", bytes.Repeat([]byte{'a' + byte(i)}, 40)))
	}
	var wg sync.WaitGroup
	for _, fl := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.files.Process(f.ctx, f.orgA, fl.ID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ready, rejected := 0, 0
	for _, fl := range fs {
		status, reason, _, _ := f.row(t, fl.ID)
		switch status {
		case "ready":
			ready++
		case "rejected":
			rejected++
			if reason == "" || f.exists(t, file.Key(f.orgA, fl.ID)) {
				t.Errorf("rejected %q with its object left", reason)
			}
		}
	}
	if ready != 2 || rejected != 2 || f.usage(t, f.orgA) != 80 {
		t.Fatalf("%d ready, %d rejected, usage %d", ready, rejected, f.usage(t, f.orgA))
	}
}

// A file:process of org B's file run as org A's task (A's RLS) finds
// nothing and changes nothing; as B's it processes it.
func TestProcessRunsUnderTheTasksOrganization(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	fb := f.upload(t, f.user(f.ownerB, f.orgB), f.resB, "b.txt", "text/plain", []byte("org B's secret"))
	if err := f.files.Process(f.ctx, f.orgA, fb.ID); err != nil {
		t.Fatal(err)
	}
	if status, _, _, _ := f.row(t, fb.ID); status != "pending" || !f.exists(t, file.Key(f.orgB, fb.ID)) {
		t.Fatalf("A's task touched B's file: %s", status)
	}
	// A run for a file deleted meanwhile removes what an earlier, crashed
	// run of it left.
	gone := uuid.New()
	if err := f.bucket.Put(f.ctx, file.ThumbnailKey(f.orgA, gone), "image/png", []byte("left over")); err != nil {
		t.Fatal(err)
	}
	if err := f.files.Process(f.ctx, f.orgA, gone); err != nil || f.exists(t, file.ThumbnailKey(f.orgA, gone)) {
		t.Fatalf("leftover thumbnail kept (%v)", err)
	}
	// Nor can A's task delete B's objects: the keys derive from A.
	if err := f.files.DeleteObjects(f.ctx, f.orgA, []uuid.UUID{fb.ID}); err != nil {
		t.Fatal(err)
	}
	if !f.exists(t, file.Key(f.orgB, fb.ID)) {
		t.Fatal("A's delete task removed B's object")
	}
	// And B's own task does not delete a file that still has its row.
	if err := f.files.DeleteObjects(f.ctx, f.orgB, []uuid.UUID{fb.ID}); err != nil || !f.exists(t, file.Key(f.orgB, fb.ID)) {
		t.Fatalf("delete-objects removed a live file's object (%v)", err)
	}
	if err := f.files.Process(f.ctx, f.orgB, fb.ID); err != nil {
		t.Fatal(err)
	}
	if status, _, _, _ := f.row(t, fb.ID); status != "ready" {
		t.Fatalf("B's task: %s", status)
	}
	if f.usage(t, f.orgA) != 0 || f.usage(t, f.orgB) != int64(len("org B's secret")) {
		t.Fatalf("usage A %d B %d", f.usage(t, f.orgA), f.usage(t, f.orgB))
	}
}

// RemoveForResources deletes the files of the purged resources only,
// releases what the ready ones counted and enqueues their objects'
// deletion.
func TestRemoveForResources(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	p := f.user(f.memA, f.orgA)
	other := uuid.New()
	f.db.Owner.MustExec(`INSERT INTO resources (org_id, id, name) VALUES ($1, $2, 'kept')`, f.orgA, other)
	ready := f.upload(t, p, f.resA, "r.txt", "text/plain", []byte("ready file"))
	if err := f.files.Process(f.ctx, f.orgA, ready.ID); err != nil {
		t.Fatal(err)
	}
	pending := f.upload(t, p, f.resA, "p.txt", "text/plain", []byte("pending"))
	kept := f.upload(t, p, other, "k.txt", "text/plain", []byte("kept!"))
	if err := f.files.Process(f.ctx, f.orgA, kept.ID); err != nil {
		t.Fatal(err)
	}
	if u := f.usage(t, f.orgA); u != 15 {
		t.Fatalf("usage %d", u)
	}
	err := postgres.InTx(f.ctx, f.db.App, f.orgA, func(tx *sqlx.Tx) error {
		return f.files.RemoveForResources(f.ctx, tx, f.orgA, []uuid.UUID{f.resA, f.resB})
	})
	if err != nil {
		t.Fatal(err)
	}
	var left []uuid.UUID
	f.db.Owner.Select(&left, `SELECT id FROM files ORDER BY id`)
	if len(left) != 1 || left[0] != kept.ID || f.usage(t, f.orgA) != 5 {
		t.Fatalf("left %v usage %d", left, f.usage(t, f.orgA))
	}
	tasks := f.deleteTasks(t, f.orgA)
	if len(tasks) != 1 || len(tasks[0]) != 2 {
		t.Fatalf("delete tasks %v", tasks)
	}
	// The pending file's upload URL still works for a while: its object is
	// deleted again once the URL has expired.
	var late struct {
		Payload []byte    `db:"payload"`
		At      time.Time `db:"process_at"`
	}
	if err := f.db.Owner.Get(&late, `SELECT payload, process_at FROM outbox WHERE task_type = $1 AND process_at IS NOT NULL`, task.TypeFileDeleteObjects); err != nil {
		t.Fatal(err)
	}
	if want := f.clock.Now().Add(file.UploadTTL + time.Minute); !late.At.Equal(want) || !bytes.Contains(late.Payload, []byte(pending.ID.String())) ||
		bytes.Contains(late.Payload, []byte(ready.ID.String())) {
		t.Fatalf("late delete %s at %s, want at %s", late.Payload, late.At, want)
	}
	if err := f.files.DeleteObjects(f.ctx, f.orgA, tasks[0]); err != nil {
		t.Fatal(err)
	}
	if f.exists(t, file.Key(f.orgA, ready.ID)) || f.exists(t, file.Key(f.orgA, pending.ID)) || !f.exists(t, file.Key(f.orgA, kept.ID)) {
		t.Fatal("objects after delete-objects are wrong")
	}
	// The purge can now delete the resource (the foreign key is satisfied).
	if _, err := f.db.Owner.Exec(`DELETE FROM resources WHERE org_id = $1 AND id = $2`, f.orgA, f.resA); err != nil {
		t.Fatal(err)
	}
}

// files:cleanup-pending removes pending files a day old, in every
// organization, and their objects; younger and ready files stay.
func TestCleanupPending(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	oldA := f.upload(t, f.user(f.memA, f.orgA), f.resA, "old.txt", "text/plain", []byte("old"))
	oldB := f.upload(t, f.user(f.ownerB, f.orgB), f.resB, "old.txt", "text/plain", []byte("old"))
	done := f.upload(t, f.user(f.memA, f.orgA), f.resA, "done.txt", "text/plain", []byte("done"))
	if err := f.files.Process(f.ctx, f.orgA, done.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(file.PendingTTL - time.Minute)
	young := f.upload(t, f.user(f.memA, f.orgA), f.resA, "young.txt", "text/plain", []byte("young"))
	res, err := f.files.CleanupPending(f.ctx)
	if err != nil || res.Removed != 0 {
		t.Fatalf("before the day is over: %+v %v", res, err)
	}
	f.clock.Advance(2 * time.Minute)
	res, err = f.files.CleanupPending(f.ctx)
	if err != nil || res.Removed != 2 || res.Orgs != 2 {
		t.Fatalf("after a day: %+v %v", res, err)
	}
	var left []uuid.UUID
	f.db.Owner.Select(&left, `SELECT id FROM files ORDER BY id`)
	if len(left) != 2 || !contains(left, done.ID) || !contains(left, young.ID) {
		t.Fatalf("left %v", left)
	}
	for _, c := range []struct {
		org uuid.UUID
		f   *file.File
	}{{f.orgA, oldA}, {f.orgB, oldB}} {
		tasks := f.deleteTasks(t, c.org)
		if len(tasks) != 1 || tasks[0][0] != c.f.ID {
			t.Fatalf("delete tasks of %s: %v", c.org, tasks)
		}
		if err := f.files.DeleteObjects(f.ctx, c.org, tasks[0]); err != nil {
			t.Fatal(err)
		}
		if f.exists(t, file.Key(c.org, c.f.ID)) {
			t.Fatal("expired object kept")
		}
	}
	if f.usage(t, f.orgA) != 4 {
		t.Fatalf("usage %d", f.usage(t, f.orgA))
	}
}

func contains(ids []uuid.UUID, id uuid.UUID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// An image whose header claims more pixels than allowed (a decompression
// bomb) is never decoded: the file is ready, without a thumbnail.
func TestDecompressionBombGetsNoThumbnail(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	f.files.MaxPixels = 1000
	body := pngOf(t, 100, 100) // 10,000 pixels
	fl := f.upload(t, f.user(f.memA, f.orgA), f.resA, "big.png", "image/png", body)
	if err := f.files.Process(f.ctx, f.orgA, fl.ID); err != nil {
		t.Fatal(err)
	}
	if status, _, _, thumb := f.row(t, fl.ID); status != "ready" || thumb || f.exists(t, file.ThumbnailKey(f.orgA, fl.ID)) {
		t.Fatalf("%s, thumbnail %v", status, thumb)
	}
}

// Files of a soft-deleted resource are not found, listed or completed.
func TestFilesOfDeletedResourceAreHidden(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	p := f.user(f.memA, f.orgA)
	fl := f.upload(t, p, f.resA, "a.txt", "text/plain", []byte("aaa"))
	rows, _, err := f.files.List(f.ctx, p, f.resA, tenant.Page{Limit: 20})
	if err != nil || len(rows) != 1 {
		t.Fatalf("list: %d %v", len(rows), err)
	}
	f.db.Owner.MustExec(`UPDATE resources SET deleted_at = now() WHERE id = $1`, f.resA)
	if _, err := f.files.Get(f.ctx, p, fl.ID); !errors.Is(err, file.ErrNotFound) {
		t.Fatalf("get: %v", err)
	}
	if _, err := f.files.Complete(f.ctx, p, fl.ID, f.meta); !errors.Is(err, file.ErrNotFound) {
		t.Fatalf("complete: %v", err)
	}
	if err := f.files.Delete(f.ctx, p, fl.ID, f.meta); !errors.Is(err, file.ErrNotFound) {
		t.Fatalf("delete: %v", err)
	}
	if _, _, err := f.files.List(f.ctx, p, f.resA, tenant.Page{Limit: 20}); !errors.Is(err, file.ErrNoResource) {
		t.Fatalf("list: %v", err)
	}
}

// Lists page by keyset, newest first, without repeats or gaps.
func TestListPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	p := f.user(f.memA, f.orgA)
	var want []uuid.UUID
	for i := 0; i < 5; i++ {
		up, err := f.files.Create(f.ctx, p, f.resA, file.NewFile{Filename: "f.txt", ContentType: "text/plain", Size: 1}, f.meta)
		if err != nil {
			t.Fatal(err)
		}
		want = append([]uuid.UUID{up.File.ID}, want...)
		f.clock.Advance(time.Second)
	}
	var got []uuid.UUID
	pg := tenant.Page{Limit: 2}
	for {
		rows, next, err := f.files.List(f.ctx, p, f.resA, pg)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			got = append(got, r.ID)
		}
		if next == "" {
			break
		}
		pg.Cursor = next
	}
	if len(got) != 5 {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
}
