package backup_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/platform/clock/clocktest"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/s3test"
)

// MustTaker returns a taker of db into a fresh bucket under prefix "db/"
// with S3's smallest part size, and the verifier of what it stores.
func MustTaker(t *testing.T, db *postgrestest.DB) (*backup.Taker, *backup.Verifier, *s3test.Server) {
	t.Helper()
	v, srv := MustStored(t, db)
	tk := &backup.Taker{SourceURL: db.OwnerURL, Store: srv.Client, Bucket: srv.Bucket, Prefix: "db",
		Stream: s3.StreamOptions{PartSize: s3.MinPartSize, Concurrency: 2}, Retention: backup.Retention{Days: 30, Keep: 3}}
	return tk, v, srv
}

// MustFillBig adds about mib MiB of random bytes to outbox, which pg_dump's
// compression cannot shrink, so the dump spans more than one 5 MiB part.
func MustFillBig(t *testing.T, db *postgrestest.DB, mib int) {
	t.Helper()
	// 64 KiB per row: 4096 md5s of 16 bytes each.
	if _, err := db.Owner.Exec(`INSERT INTO outbox (id, task_type, payload)
		SELECT gen_random_uuid(), 'test:big', decode(string_agg(md5(random()::text), ''), 'hex')
		FROM generate_series(0, $1 * 16 * 4096 - 1) g GROUP BY g / 4096`, mib); err != nil {
		t.Fatal(err)
	}
}

func TestDumpKeys(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	for prefix, want := range map[string]string{
		"keel/":      "keel/2026/11/28/keel-20261128T030000Z.dump",
		"keel/daily": "keel/daily/2026/11/28/keel-20261128T030000Z.dump",
		"":           "2026/11/28/keel-20261128T030000Z.dump",
	} {
		if got := backup.DumpKey(prefix, at.In(time.FixedZone("CET", 3600))); got != want {
			t.Errorf("DumpKey(%q) = %q, want %q", prefix, got, want)
		}
		if got, ok := backup.ParseKey(prefix, want); !ok || !got.Equal(at) {
			t.Errorf("ParseKey(%q, %q) = %s, %t", prefix, want, got, ok)
		}
	}
	for _, k := range []string{"keel/today.dump", "keel/2026/11/27/keel-20261128T030000Z.dump", "other/2026/11/28/keel-20261128T030000Z.dump",
		"keel/2026/11/28/keel-20261128T030000Z.dump.gz", "keel/x/2026/11/28/keel-20261128T030000Z.dump"} {
		if _, ok := backup.ParseKey("keel/", k); ok {
			t.Errorf("ParseKey accepted %q", k)
		}
	}
}

func TestRetentionExpired(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	daysAgo := func(d ...int) []string {
		var out []string
		for _, n := range d {
			out = append(out, backup.DumpKey("db/", now.Add(-time.Duration(n)*24*time.Hour)))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		r    backup.Retention
		ages []int
		want []string
	}{
		{"older than the days go, oldest first", backup.Retention{Days: 7, Keep: 2}, []int{0, 1, 8, 30, 6}, daysAgo(30, 8)},
		{"exactly the days old stays", backup.Retention{Days: 7, Keep: 1}, []int{0, 7}, nil},
		{"the newest Keep stay whatever their age", backup.Retention{Days: 7, Keep: 3}, []int{20, 30, 40, 50}, daysAgo(50)},
		{"Keep 0 still keeps the newest", backup.Retention{Days: 1, Keep: 0}, []int{10, 20}, daysAgo(20)},
		{"Days 0 keeps everything", backup.Retention{Days: 0, Keep: 1}, []int{0, 400}, nil},
	} {
		keys := append(daysAgo(tc.ages...), "db/manual.dump", "db/2020/01/01/other.dump")
		if got := tc.r.Expired("db/", keys, now); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Expired = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// backup:take then backup:verify: a dump larger than one part is streamed
// in parts, and the verifier restores exactly that object with its rows.
// Then a newer object that is garbage, or a truncated dump, makes the
// verification fail naming it.
func TestTakeThenVerifyThenCorruptNewest(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	MustPopulate(t, db, 200)
	MustFillBig(t, db, 7)
	tk, v, srv := MustTaker(t, db)
	ctx := context.Background()
	rep, err := tk.Take(ctx)
	if err != nil {
		t.Fatalf("take: %v (%+v)", err, rep)
	}
	if rep.Parts < 2 || rep.Bytes <= s3.MinPartSize || rep.Kept != 1 || !strings.HasPrefix(rep.Key, "db/") {
		t.Fatalf("take report: %+v, want a dump over 5 MiB in 2+ parts", rep)
	}
	if at, ok := backup.ParseKey("db", rep.Key); !ok || time.Since(at) > time.Minute {
		t.Fatalf("key %s does not name the take's time", rep.Key)
	}
	vr, err := v.Verify(ctx)
	if err != nil {
		t.Fatalf("verify after take: %v (%+v)", err, vr)
	}
	if vr.ObjectKey != rep.Key || vr.DumpBytes != rep.Bytes || vr.TableRows["public.outbox"] != 200+7*16 || vr.TableRows["public.sent_emails"] != 100 {
		t.Fatalf("verified %+v, want the dump just taken (%s, %d bytes)", vr, rep.Key, rep.Bytes)
	}

	var dump bytes.Buffer
	if _, err := srv.Client.Download(ctx, srv.Bucket, rep.Key, &dump); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	at, _ := backup.ParseKey("db", rep.Key)
	for i, tc := range []struct {
		body []byte
		want error
		msg  string
	}{
		{[]byte("this is not a dump\n"), backup.ErrFormat, "is unrecognised content"},
		{dump.Bytes()[:dump.Len()/2], backup.ErrRestore, "restore failed"},
	} {
		key := backup.DumpKey("db", at.Add(time.Duration(i+1)*time.Hour))
		p := filepath.Join(dir, "bad.dump")
		if err := os.WriteFile(p, tc.body, 0o600); err != nil {
			t.Fatal(err)
		}
		srv.MustUpload(t, key, p)
		vr, err := v.Verify(ctx)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), tc.msg) || vr.ObjectKey != key {
			t.Fatalf("corrupt newest %s: want %v naming it, got %v", key, tc.want, err)
		}
	}
}

// A pg_dump that fails after writing more than a part aborts the upload:
// no object, no multipart upload left, pg_dump's stderr in the error, and
// retention does not run (an old dump past it stays).
func TestTakeFailedDumpStoresNothing(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	tk, _, srv := MustTaker(t, db)
	ctx := context.Background()
	now := time.Now().UTC()
	old := backup.DumpKey("db", now.Add(-100*24*time.Hour))
	if err := (s3.Bucket{Client: srv.Client, Name: srv.Bucket}).Put(ctx, old, "application/octet-stream", []byte("PGDMP old")); err != nil {
		t.Fatal(err)
	}
	tk.Retention = backup.Retention{Days: 1, Keep: 1}
	tk.PgDump = filepath.Join(t.TempDir(), "pg_dump")
	script := "#!/bin/sh\nhead -c 6291456 /dev/urandom\necho 'pg_dump: error: connection to server lost' >&2\nexit 1\n"
	if err := os.WriteFile(tk.PgDump, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	rep, err := tk.Take(ctx)
	if err == nil || !strings.Contains(err.Error(), "connection to server lost") || !strings.Contains(err.Error(), "exit status 1") ||
		!strings.Contains(err.Error(), "nothing stored") {
		t.Fatalf("want pg_dump's failure with its stderr, got %v", err)
	}
	objs, err := srv.Client.List(ctx, srv.Bucket, "db/")
	if err != nil || len(objs) != 1 || objs[0].Key != old {
		t.Fatalf("objects after a failed take: %+v (%v), want only %s", objs, err, old)
	}
	if left, err := srv.Client.Uploads(ctx, srv.Bucket, "db/"); err != nil || len(left) != 0 {
		t.Fatalf("multipart uploads left: %v (%v)", left, err)
	}
	if rep.Key == "" || len(rep.Deleted) != 0 {
		t.Fatalf("report: %+v", rep)
	}

	tk.PgDump = ""
	tk.SourceURL = strings.Replace(db.OwnerURL, "/"+db.Name+"?", "/no_such_db_here?", 1)
	if _, err := tk.Take(ctx); err == nil || !strings.Contains(err.Error(), "no_such_db_here") {
		t.Fatalf("a database that does not exist: %v", err)
	}
}

// Retention after a successful take, with a driven clock: dumps whose key
// time is past the days go, the newest Keep stay, and objects Taker did not
// name are left alone.
func TestTakeAppliesRetention(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	tk, _, srv := MustTaker(t, db)
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	tk.Clock = clocktest.New(now)
	tk.Retention = backup.Retention{Days: 30, Keep: 3}
	b := s3.Bucket{Client: srv.Client, Name: srv.Bucket}
	var keys []string
	for _, d := range []int{1, 2, 29, 31, 45, 400} {
		k := backup.DumpKey("db", now.Add(-time.Duration(d)*24*time.Hour))
		keys = append(keys, k)
		if err := b.Put(ctx, k, "application/octet-stream", []byte("PGDMP")); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"db/manual-before-upgrade.dump", "elsewhere/2020/01/01/keel-20200101T000000Z.dump"} {
		if err := b.Put(ctx, k, "application/octet-stream", []byte("PGDMP")); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := tk.Take(ctx)
	if err != nil {
		t.Fatalf("take: %v", err)
	}
	if rep.Key != "db/2026/11/28/keel-20261128T030000Z.dump" {
		t.Fatalf("key %s, want the driven clock's time", rep.Key)
	}
	wantDeleted := []string{keys[5], keys[4], keys[3]}
	if !slices.Equal(rep.Deleted, wantDeleted) || rep.Kept != 4 {
		t.Fatalf("deleted %v (kept %d), want %v (kept 4)", rep.Deleted, rep.Kept, wantDeleted)
	}
	objs, err := srv.Client.List(ctx, srv.Bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, o := range objs {
		left = append(left, o.Key)
	}
	slices.Sort(left)
	want := []string{keys[2], keys[1], keys[0], rep.Key, "db/manual-before-upgrade.dump", "elsewhere/2020/01/01/keel-20200101T000000Z.dump"}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}

	// A year later with nothing taken in between: the newest Keep stay,
	// however old.
	tk.Clock = clocktest.New(now.Add(365 * 24 * time.Hour))
	tk.Retention.Keep = 4
	rep, err = tk.Take(ctx)
	if err != nil || !slices.Equal(rep.Deleted, []string{keys[2]}) || rep.Kept != 4 {
		t.Fatalf("a year later: deleted %v, kept %d (%v); want only %s gone", rep.Deleted, rep.Kept, err, keys[2])
	}
}

func TestTakeNeedsSourceAndBucket(t *testing.T) {
	t.Parallel()
	if _, err := (&backup.Taker{}).Take(context.Background()); err == nil || !strings.Contains(err.Error(), "BACKUP_DATABASE_URL") {
		t.Fatalf("without a source: %v", err)
	}
	if _, err := (&backup.Taker{SourceURL: "postgres://x@127.0.0.1/x"}).Take(context.Background()); err == nil || !strings.Contains(err.Error(), "BACKUP_S3_BUCKET") {
		t.Fatalf("without a bucket: %v", err)
	}
}
