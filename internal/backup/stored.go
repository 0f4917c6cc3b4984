package backup

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/s3"
)

// DefaultMaxAge fits a daily backup with slack for a slow or late run.
const DefaultMaxAge = 26 * time.Hour

// Objects is the object store stored dumps live in; *s3.Client implements it.
type Objects interface {
	// Newest returns the most recently modified object under prefix, or an
	// error wrapping s3.ErrEmpty when there is none.
	Newest(ctx context.Context, bucket, prefix string) (s3.Object, error)
	// Download streams an object into w.
	Download(ctx context.Context, bucket, key string, w io.Writer) (int64, error)
}

var _ Objects = (*s3.Client)(nil)

// customMagic opens every pg_dump custom-format archive.
var customMagic = []byte("PGDMP")

// verifyStored restores the newest stored dump and checks what it holds. A
// stored dump predates the live data, so row counts are recorded, not
// compared; its migration version may lag the live one but never lead it.
func (v *Verifier) verifyStored(ctx context.Context, db *sql.DB, src *url.URL, rep *Report) error {
	rep.Bucket = v.Bucket
	if v.Store == nil {
		return errors.New("backup verify: BACKUP_S3_BUCKET is set but no S3 client was configured")
	}
	var err error
	if rep.Version, err = migrationVersion(ctx, db); err != nil {
		return err
	}
	where := "s3://" + v.Bucket + "/" + v.Prefix
	obj, err := v.Store.Newest(ctx, v.Bucket, v.Prefix)
	if errors.Is(err, s3.ErrEmpty) {
		return fmt.Errorf("backup verify: %w: no objects under %s", ErrNoBackup, where)
	}
	if err != nil {
		return fmt.Errorf("backup verify: %w", err)
	}
	rep.ObjectKey = obj.Key
	mod := obj.LastModified.UTC()
	rep.ObjectModified = &mod
	age := time.Since(obj.LastModified)
	rep.ObjectAgeHours = math.Round(age.Hours()*100) / 100
	maxAge := v.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if age > maxAge {
		return fmt.Errorf("backup verify: %w: latest backup is %d hours old (s3://%s/%s, modified %s; BACKUP_MAX_AGE is %s)",
			ErrStale, int(age.Hours()), v.Bucket, obj.Key, mod.Format(time.RFC3339), maxAge)
	}

	dump, cleanup, err := v.tempFile()
	if err != nil {
		return err
	}
	defer cleanup()
	start := time.Now()
	if rep.DumpBytes, err = v.download(ctx, obj, dump); err != nil {
		return err
	}
	rep.DownloadSeconds = time.Since(start).Seconds()
	if err := checkFormat(dump, obj.Key); err != nil {
		return err
	}
	toc, err := v.run(ctx, or(v.PgRestore, "pg_restore"), nil, "--list", dump)
	if err != nil {
		return fmt.Errorf("backup verify: %w: %s cannot be read: %w", ErrRestore, obj.Key, err)
	}
	tables := tocTables(toc)

	scratch, drop, err := createScratch(ctx, db, src, rep)
	if err != nil {
		return err
	}
	defer drop()
	if err := v.restore(ctx, scratch, dump, rep); err != nil {
		return fmt.Errorf("backup verify: %w: %s: %w", ErrRestore, obj.Key, err)
	}
	sdb, err := sql.Open(postgres.DriverName, scratch.String())
	if err != nil {
		return err
	}
	defer sdb.Close()
	if err := countRestored(ctx, sdb, tables, rep); err != nil {
		return err
	}
	rep.RestoredVersion, err = migrationVersion(ctx, sdb)
	if err != nil {
		return err
	}
	switch {
	case len(rep.MissingTables) > 0:
		return fmt.Errorf("backup verify: %w: %s: %d table(s) in the dump did not restore (first: %s)",
			ErrRestore, obj.Key, len(rep.MissingTables), rep.MissingTables[0])
	case rep.RestoredVersion == 0:
		return fmt.Errorf("backup verify: %w: %s holds no goose migration version: is it a dump of this database?", ErrMismatch, obj.Key)
	case rep.RestoredVersion > rep.Version:
		return fmt.Errorf("backup verify: %w: %s is at migration %d, newer than the live database's %d",
			ErrMismatch, obj.Key, rep.RestoredVersion, rep.Version)
	}
	return nil
}

// download streams obj into the file at path.
func (v *Verifier) download(ctx context.Context, obj s3.Object, path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("backup verify: %w", err)
	}
	n, err := v.Store.Download(ctx, obj.Bucket, obj.Key, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("backup verify: download: %w", err)
	}
	return n, nil
}

// checkFormat accepts only pg_dump's custom format, which pg_restore can
// list and restore table by table, and names what the file is otherwise.
func checkFormat(path, key string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("backup verify: %w", err)
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	what := "unrecognised content"
	switch {
	case bytes.HasPrefix(head, customMagic):
		return nil
	case n == 0:
		what = "an empty object"
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		what = "gzip-compressed (store pg_dump -Fc output as is; it is compressed already)"
	case bytes.HasPrefix(head, []byte("--")) || bytes.HasPrefix(head, []byte("SET ")):
		what = "a plain SQL dump"
	case n >= 262 && string(head[257:262]) == "ustar", bytes.Contains(head, []byte("toc.dat")):
		what = "a tar-format dump"
	}
	return fmt.Errorf("backup verify: %w: %s is %s", ErrFormat, key, what)
}

// tocTable is a table a dump's table of contents defines.
type tocTable struct{ schema, name string }

// tocTables reads `pg_restore --list` output: lines such as
// "215; 1259 16386 TABLE public outbox owner".
func tocTables(list []byte) []tocTable {
	var out []tocTable
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, ";") {
			continue
		}
		_, rest, ok := strings.Cut(line, "; ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) >= 5 && f[2] == "TABLE" && f[3] != "DATA" {
			out = append(out, tocTable{schema: f[3], name: f[4]})
		}
	}
	return out
}

// countRestored records each dumped table's restored row count, and the
// tables that are missing from the scratch database.
func countRestored(ctx context.Context, sdb *sql.DB, tables []tocTable, rep *Report) error {
	tx, err := sdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("backup verify: open scratch: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	// Off: a role under RLS gets an error instead of silently short counts.
	if _, err := tx.ExecContext(ctx, `SET LOCAL row_security = off`); err != nil {
		return err
	}
	rep.TableRows = make(map[string]int64, len(tables))
	for _, t := range tables {
		var name string
		var present bool
		if err := tx.QueryRowContext(ctx, `SELECT quote_ident($1) || '.' || quote_ident($2),
			to_regclass(quote_ident($1) || '.' || quote_ident($2)) IS NOT NULL`, t.schema, t.name).Scan(&name, &present); err != nil {
			return fmt.Errorf("backup verify: %w", err)
		}
		if !present {
			rep.MissingTables = append(rep.MissingTables, name)
			continue
		}
		var n int64
		// name comes from quote_ident.
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+name).Scan(&n); err != nil {
			return fmt.Errorf("backup verify: count restored %s: %w", name, err)
		}
		rep.TableRows[name] = n
		rep.Rows += n
	}
	rep.Tables = len(rep.TableRows)
	return nil
}
