// Package backup checks that the database can be restored: it dumps it with
// pg_dump, restores the dump into a scratch database with pg_restore, and
// compares every table's row count, taken in the dump's own snapshot, and
// the migration version. With a bucket configured it checks the newest dump
// stored there instead (stored.go). A backup that has never been restored is
// a hope, not a backup.
package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// Errors of a verification from stored dumps.
var (
	ErrNoBackup = errors.New("no backup found")
	ErrStale    = errors.New("latest backup is too old")
	ErrFormat   = errors.New("not a custom-format dump (pg_dump -Fc)")
	ErrRestore  = errors.New("restore failed")
)

// ErrMismatch means the restore finished but does not hold what was dumped.
var ErrMismatch = errors.New("restored database differs from the source")

// Verifier runs the check. SourceURL must connect as a role that reads every
// row: a superuser or a role with BYPASSRLS (pg_dump as a role under Row Level
// Security fails or silently dumps only the visible rows), and that may
// CREATE DATABASE for the scratch copy.
type Verifier struct {
	SourceURL string
	PgDump    string // path or name on PATH; default pg_dump
	PgRestore string // path or name on PATH; default pg_restore
	WorkDir   string // where the dump file goes; default os.TempDir()

	// Bucket, when set, makes Verify restore the newest dump stored under
	// Prefix (read through Store) instead of taking a fresh pg_dump: it
	// proves the backups ops would actually restore from.
	Store  Objects
	Bucket string
	Prefix string
	// MaxAge is how old that newest dump may be; zero means DefaultMaxAge.
	MaxAge time.Duration
}

// Mismatch is one table whose restored row count differs.
type Mismatch struct {
	Table    string `json:"table"`
	Source   int64  `json:"source"`
	Restored int64  `json:"restored"`
}

// Sources of the dump a Report checked.
const (
	SourcePgDump = "pg_dump" // a fresh dump of the live database
	SourceS3     = "s3"      // the newest stored dump under a bucket prefix
)

// Report is what a verification found.
type Report struct {
	Database string `json:"database"`
	Source   string `json:"source"`
	Scratch  string `json:"scratch"`
	Tables   int    `json:"tables"`
	Rows     int64  `json:"rows"`
	// DumpBytes is the dump's size, fresh or downloaded.
	DumpBytes int64 `json:"dump_bytes"`
	// Version is the live database's goose version; RestoredVersion the
	// restored dump's.
	Version         int64   `json:"migration_version"`
	RestoredVersion int64   `json:"restored_migration_version"`
	DumpSeconds     float64 `json:"dump_seconds,omitempty"`
	DownloadSeconds float64 `json:"download_seconds,omitempty"`
	RestoreSeconds  float64 `json:"restore_seconds"`
	// Mismatches are tables whose restored count differs from the live
	// snapshot's (fresh dumps only; a stored dump is older than the data).
	Mismatches []Mismatch `json:"mismatches,omitempty"`

	// For a stored dump: which object, how old, and what it restored.
	Bucket         string           `json:"bucket,omitempty"`
	ObjectKey      string           `json:"object_key,omitempty"`
	ObjectModified *time.Time       `json:"object_modified,omitempty"`
	ObjectAgeHours float64          `json:"object_age_hours,omitempty"`
	TableRows      map[string]int64 `json:"table_rows,omitempty"`
	MissingTables  []string         `json:"missing_tables,omitempty"`
}

// Verify checks a restore and drops the scratch database: of a fresh
// pg_dump, or, when Bucket is set, of the newest dump stored under Prefix.
// The report is filled as far as the check got, also on error.
func (v *Verifier) Verify(ctx context.Context) (Report, error) {
	var rep Report
	if v.SourceURL == "" {
		return rep, errors.New("backup verify: no source database configured (set BACKUP_DATABASE_URL to a superuser or BYPASSRLS role)")
	}
	src, err := url.Parse(v.SourceURL)
	if err != nil {
		return rep, fmt.Errorf("backup verify: source URL: %w", err)
	}
	rep.Database = strings.TrimPrefix(src.Path, "/")
	db, err := sql.Open(postgres.DriverName, v.SourceURL)
	if err != nil {
		return rep, err
	}
	defer db.Close()
	if v.Bucket != "" {
		rep.Source = SourceS3
		err = v.verifyStored(ctx, db, src, &rep)
	} else {
		rep.Source = SourcePgDump
		err = v.verifyFresh(ctx, db, src, &rep)
	}
	return rep, err
}

// verifyFresh dumps the live database and compares the restore with it.
func (v *Verifier) verifyFresh(ctx context.Context, db *sql.DB, src *url.URL, rep *Report) error {
	// The counts and the dump read one snapshot: a REPEATABLE READ
	// transaction exports it and pg_dump --snapshot uses it, so concurrent
	// writes cannot make an honest restore look wrong.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("backup verify: begin snapshot: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	// Off: a role under RLS gets an error instead of silently short counts.
	if _, err := tx.ExecContext(ctx, `SET LOCAL row_security = off`); err != nil {
		return fmt.Errorf("backup verify: %w", err)
	}
	var snapshot string
	if err := tx.QueryRowContext(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		return fmt.Errorf("backup verify: export snapshot: %w", err)
	}
	tables, err := listTables(ctx, tx)
	if err != nil {
		return err
	}
	want, err := countRows(ctx, tx, tables)
	if err != nil {
		return fmt.Errorf("backup verify: count source rows (the role must bypass RLS): %w", err)
	}
	rep.Tables = len(tables)
	for _, n := range want {
		rep.Rows += n
	}
	if rep.Version, err = migrationVersion(ctx, tx); err != nil {
		return err
	}

	dump, cleanup, err := v.tempFile()
	if err != nil {
		return err
	}
	defer cleanup()
	start := time.Now()
	if _, err := v.run(ctx, or(v.PgDump, "pg_dump"), src, "--format=custom", "--snapshot="+snapshot, "--file="+dump); err != nil {
		return fmt.Errorf("backup verify: pg_dump: %w", err)
	}
	rep.DumpSeconds = time.Since(start).Seconds()
	if st, err := os.Stat(dump); err == nil {
		rep.DumpBytes = st.Size()
	}
	_ = tx.Rollback()

	scratch, drop, err := createScratch(ctx, db, src, rep)
	if err != nil {
		return err
	}
	defer drop()
	if err := v.restore(ctx, scratch, dump, rep); err != nil {
		return fmt.Errorf("backup verify: %w", err)
	}

	sdb, err := sql.Open(postgres.DriverName, scratch.String())
	if err != nil {
		return err
	}
	defer sdb.Close()
	stx, err := sdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("backup verify: open scratch: %w", err)
	}
	defer stx.Rollback() //nolint:errcheck // read-only
	if _, err := stx.ExecContext(ctx, `SET LOCAL row_security = off`); err != nil {
		return err
	}
	got, err := countRows(ctx, stx, tables)
	if err != nil {
		// A table missing from the restore is a mismatch, not a tool error.
		got, err = countRowsTolerant(ctx, sdb, tables)
		if err != nil {
			return fmt.Errorf("backup verify: count restored rows: %w", err)
		}
	}
	for _, t := range tables {
		if want[t] != got[t] {
			rep.Mismatches = append(rep.Mismatches, Mismatch{Table: t, Source: want[t], Restored: got[t]})
		}
	}
	rep.RestoredVersion, _ = migrationVersion(ctx, sdb)
	if len(rep.Mismatches) > 0 || rep.Version != rep.RestoredVersion {
		return fmt.Errorf("%w: %d table(s) with other row counts (first: %s), migration version %d restored as %d",
			ErrMismatch, len(rep.Mismatches), firstTable(rep.Mismatches), rep.Version, rep.RestoredVersion)
	}
	return nil
}

// tempFile names a new empty file in the work directory for a dump.
func (v *Verifier) tempFile() (string, func(), error) {
	dir := v.WorkDir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "keel-backup-*.dump")
	if err != nil {
		return "", nil, fmt.Errorf("backup verify: %w", err)
	}
	f.Close()
	return f.Name(), func() { _ = os.Remove(f.Name()) }, nil
}

// createScratch creates an empty database beside the source and returns its
// URL and a func that drops it, even after ctx has ended.
func createScratch(ctx context.Context, db *sql.DB, src *url.URL, rep *Report) (*url.URL, func(), error) {
	rep.Scratch = "keel_verify_" + randHex(6)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+postgres.QuoteIdentifier(rep.Scratch)+" TEMPLATE template0"); err != nil {
		return nil, nil, fmt.Errorf("backup verify: create scratch database (the role needs CREATEDB): %w", err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_, _ = db.ExecContext(dctx, "DROP DATABASE IF EXISTS "+postgres.QuoteIdentifier(rep.Scratch)+" WITH (FORCE)")
	}
	scratch := *src
	scratch.Path = "/" + rep.Scratch
	return &scratch, drop, nil
}

// restore loads dump into scratch, stopping at the first failed statement,
// whose TOC entry (the table, for data) pg_restore names in the error.
func (v *Verifier) restore(ctx context.Context, scratch *url.URL, dump string, rep *Report) error {
	start := time.Now()
	if _, err := v.run(ctx, or(v.PgRestore, "pg_restore"), scratch, "--no-owner", "--no-privileges", "--exit-on-error", dump); err != nil {
		return err
	}
	rep.RestoreSeconds = time.Since(start).Seconds()
	return nil
}

func firstTable(m []Mismatch) string {
	if len(m) == 0 {
		return "none"
	}
	return fmt.Sprintf("%s %d→%d", m[0].Table, m[0].Source, m[0].Restored)
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// listTables returns every ordinary and partitioned table outside the
// system schemas, as quoted schema.table names.
func listTables(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("backup verify: list tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func countRows(ctx context.Context, q querier, tables []string) (map[string]int64, error) {
	out := make(map[string]int64, len(tables))
	for _, t := range tables {
		var n int64
		// t comes from quote_ident in listTables.
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// countRowsTolerant counts each table in its own statement outside a
// transaction, reporting -1 for a table that does not exist.
func countRowsTolerant(ctx context.Context, db *sql.DB, tables []string) (map[string]int64, error) {
	present, err := listTables(ctx, db)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(tables))
	for _, t := range tables {
		if !slices.Contains(present, t) {
			out[t] = -1
			continue
		}
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// migrationVersion returns goose's current version, 0 when the table is absent.
func migrationVersion(ctx context.Context, q querier) (int64, error) {
	var reg sql.NullString
	if err := q.QueryRowContext(ctx, `SELECT to_regclass('goose_db_version')::text`).Scan(&reg); err != nil {
		return 0, fmt.Errorf("backup verify: %w", err)
	}
	if !reg.Valid {
		return 0, nil
	}
	var v int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(max(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&v)
	return v, err
}

// run starts a PostgreSQL client tool against u (without a database when u
// is nil) and returns its standard output.
func (v *Verifier) run(ctx context.Context, tool string, u *url.URL, args ...string) ([]byte, error) {
	cmd := command(ctx, tool, u, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, toolError(tool, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// command builds a PostgreSQL client tool's command against u (without a
// database when u is nil). The password goes through PGPASSWORD, not the
// command line, where any local user could read it.
func command(ctx context.Context, tool string, u *url.URL, args ...string) *exec.Cmd {
	env := os.Environ()
	if u != nil {
		conn := *u
		if conn.User != nil {
			if p, ok := conn.User.Password(); ok {
				env = append(env, "PGPASSWORD="+p)
				conn.User = url.User(conn.User.Username())
			}
		}
		args = append([]string{"--dbname=" + conn.String()}, args...)
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = env
	return cmd
}

// toolError names the tool, how it ended and what it said on stderr.
func toolError(tool string, err error, stderr string) error {
	msg := strings.TrimSpace(stderr)
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	return fmt.Errorf("%s: %w: %s", filepath.Base(tool), err, msg)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
