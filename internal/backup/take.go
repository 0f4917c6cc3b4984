package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keelhq/keel/internal/platform/clock"
	"github.com/keelhq/keel/internal/platform/s3"
)

// Store is where Taker writes dumps; *s3.Client implements it.
type Store interface {
	// UploadStream stores r under key, or on any error (a read error
	// included) stores nothing.
	UploadStream(ctx context.Context, bucket, key string, r io.Reader, o s3.StreamOptions) (s3.Uploaded, error)
	// List returns every object under prefix.
	List(ctx context.Context, bucket, prefix string) ([]s3.Object, error)
	// Delete removes key; a key already gone is no error.
	Delete(ctx context.Context, bucket, key string) error
}

var _ Store = (*s3.Client)(nil)

// ErrRetention is wrapped when a dump was stored but older ones could not
// be deleted.
var ErrRetention = errors.New("retention failed")

// Retention says which stored dumps a successful take deletes: those whose
// key time is more than Days days before the take, except the newest Keep,
// which stay whatever their age. It goes by the time in the key (when the
// dump was taken, set by Taker), not by LastModified: a copy of the bucket
// (a replication, a restore drill's `aws s3 sync`) rewrites LastModified
// and would make old dumps look new, and only keys Taker named are ever
// candidates, so a dump stored by hand under the prefix is never deleted.
type Retention struct {
	Days int // zero keeps every dump
	Keep int // at least 1: the newest dump is never deleted
}

// Expired returns the keys of dumps (keys under prefix) that r deletes at
// now, oldest first. Keys that are not Taker's are never returned.
func (r Retention) Expired(prefix string, keys []string, now time.Time) []string {
	type dump struct {
		key string
		at  time.Time
	}
	var ours []dump
	for _, k := range keys {
		if at, ok := ParseKey(prefix, k); ok {
			ours = append(ours, dump{k, at})
		}
	}
	slices.SortFunc(ours, func(a, b dump) int { return b.at.Compare(a.at) })
	if r.Days <= 0 || len(ours) <= max(r.Keep, 1) {
		return nil
	}
	cutoff := now.Add(-time.Duration(r.Days) * 24 * time.Hour)
	var out []string
	for i := len(ours) - 1; i >= max(r.Keep, 1); i-- {
		if ours[i].at.Before(cutoff) {
			out = append(out, ours[i].key)
		}
	}
	return out
}

// keyName is the file name of a dump taken at a UTC time; the folders above
// it are its date, so keys sort by time and a day's dumps list together.
const (
	keyName = "keel-20060102T150405Z.dump"
	keyDir  = "2006/01/02/"
)

// DumpKey is the key of a dump taken at t under prefix, such as
// keel/2026/11/28/keel-20261128T030000Z.dump.
func DumpKey(prefix string, t time.Time) string {
	t = t.UTC()
	return folder(prefix) + t.Format(keyDir) + t.Format(keyName)
}

// ParseKey returns when the dump at key was taken, and false when key is
// not one DumpKey names under prefix.
func ParseKey(prefix, key string) (time.Time, bool) {
	i := strings.LastIndexByte(key, '/')
	t, err := time.Parse(keyName, key[i+1:])
	if err != nil || DumpKey(prefix, t) != key {
		return time.Time{}, false
	}
	return t, true
}

func folder(prefix string) string {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return prefix + "/"
	}
	return prefix
}

// Taker streams `pg_dump -Fc` of SourceURL into the bucket under Prefix and
// then applies Retention. SourceURL must read every row: a superuser or a
// BYPASSRLS role (the same as the Verifier's), or Row Level Security makes
// pg_dump fail or dump only the visible rows.
type Taker struct {
	SourceURL string
	PgDump    string // path or name on PATH; default pg_dump
	Store     Store
	Bucket    string
	Prefix    string
	// Stream sets the part size and how many parts are in flight; the
	// dump holds at most PartSize × Concurrency bytes in memory.
	Stream    s3.StreamOptions
	Retention Retention
	Clock     clock.Clock // default clock.Real
}

// TakeReport is what a take stored and deleted.
type TakeReport struct {
	Database string    `json:"database"`
	Bucket   string    `json:"bucket"`
	Key      string    `json:"key"`
	TakenAt  time.Time `json:"taken_at"`
	Bytes    int64     `json:"bytes"`
	Parts    int       `json:"parts"`
	Seconds  float64   `json:"seconds"`
	// Kept counts Taker's dumps left under the prefix, the new one included.
	Kept    int      `json:"kept"`
	Deleted []string `json:"deleted,omitempty"`
}

// Take dumps the database into a new object and, only when that succeeded,
// deletes what Retention says. A pg_dump that fails (its error and stderr
// are returned) or an upload that fails leaves no object and no parts. The
// report is filled as far as the take got.
func (t *Taker) Take(ctx context.Context) (TakeReport, error) {
	var rep TakeReport
	switch {
	case t.SourceURL == "":
		return rep, errors.New("backup take: no source database configured (set BACKUP_DATABASE_URL to a superuser or BYPASSRLS role)")
	case t.Bucket == "" || t.Store == nil:
		return rep, errors.New("backup take: no bucket configured (set BACKUP_S3_BUCKET and BACKUP_S3_PREFIX, and S3_* to reach it)")
	}
	src, err := url.Parse(t.SourceURL)
	if err != nil {
		return rep, fmt.Errorf("backup take: source URL: %w", err)
	}
	clk := t.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	rep.Database = strings.TrimPrefix(src.Path, "/")
	rep.Bucket = t.Bucket
	rep.TakenAt = clk.Now().UTC().Truncate(time.Second)
	rep.Key = DumpKey(t.Prefix, rep.TakenAt)
	start := time.Now()
	up, err := t.stream(ctx, src, rep.Key)
	rep.Seconds = time.Since(start).Seconds()
	if err != nil {
		return rep, fmt.Errorf("backup take: %w", err)
	}
	rep.Bytes, rep.Parts = up.Size, up.Parts

	objs, err := t.Store.List(ctx, t.Bucket, t.Prefix)
	if err != nil {
		return rep, fmt.Errorf("backup take: stored s3://%s/%s, but %w: %w", t.Bucket, rep.Key, ErrRetention, err)
	}
	keys := make([]string, 0, len(objs))
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	for _, k := range t.Retention.Expired(t.Prefix, keys, rep.TakenAt) {
		if k == rep.Key {
			continue
		}
		if err := t.Store.Delete(ctx, t.Bucket, k); err != nil {
			return rep, fmt.Errorf("backup take: stored s3://%s/%s, but %w: %w", t.Bucket, rep.Key, ErrRetention, err)
		}
		rep.Deleted = append(rep.Deleted, k)
	}
	for _, k := range keys {
		if _, ok := ParseKey(t.Prefix, k); ok && !slices.Contains(rep.Deleted, k) {
			rep.Kept++
		}
	}
	return rep, nil
}

// stream runs pg_dump with its standard output piped into the upload. The
// pipe is closed with EOF only once pg_dump exited 0; a failed pg_dump
// closes it with its error, which the upload reads and aborts on.
func (t *Taker) stream(ctx context.Context, src *url.URL, key string) (s3.Uploaded, error) {
	dctx, kill := context.WithCancel(ctx)
	defer kill()
	tool := or(t.PgDump, "pg_dump")
	cmd := command(dctx, tool, src, "--format=custom", "--no-password")
	pr, pw := io.Pipe()
	stderr := &capped{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = pw, stderr
	if err := cmd.Start(); err != nil {
		return s3.Uploaded{}, fmt.Errorf("start %s: %w", tool, err)
	}
	dumped := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		if err != nil {
			err = toolError(tool, err, stderr.String())
		}
		pw.CloseWithError(err) // nil: EOF
		dumped <- err
	}()
	up, err := t.Store.UploadStream(ctx, t.Bucket, key, pr, t.Stream)
	if err != nil {
		// pg_dump may be blocked writing to the pipe: stop it.
		pr.CloseWithError(err)
		kill()
	}
	dumpErr := <-dumped
	switch {
	case dumpErr != nil && errors.Is(err, s3.ErrAborted) && errors.Is(err, dumpErr):
		return s3.Uploaded{}, fmt.Errorf("%w (upload of %s aborted, nothing stored)", dumpErr, key)
	case dumpErr != nil && (err == nil || errors.Is(err, dumpErr)):
		return s3.Uploaded{}, fmt.Errorf("%w (upload of %s: %v)", dumpErr, key, err)
	case err != nil:
		return s3.Uploaded{}, err
	}
	return up, nil
}

// capped keeps the first max bytes written to it.
type capped struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.b)
}
