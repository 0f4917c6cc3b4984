// Command seedresources fills a migrated Keel database with the data set of
// the resources benchmark (bench/wrk-resources.sh): organizations sharing a
// resources table of a million rows, one of them (the benchmarked tenant)
// with exactly 10,000 live resources, the others spread from a few thousand
// to a couple of hundred thousand rows, as tenants of one SaaS are. Names are
// drawn from word lists (so q search and name sort touch realistic keys),
// created_at spans two years, updated_at, version, status and attributes
// vary, and 2 % of each organization's rows are soft-deleted. Rows go in in
// created_at order, as an application would have inserted them over time.
//
// It runs set-based SQL as the database owner, which must bypass Row Level
// Security (a superuser, or a role with BYPASSRLS): the secondary indexes of
// resources are dropped and rebuilt from their own definitions around the
// bulk INSERT … SELECT, all in one transaction, then usage_counters is set
// to each organization's live count and the table is vacuumed and analyzed,
// as autovacuum would have left a table that old.
//
//	seedresources [-url OWNER_URL] [-org ORG_ID] [-user USER_ID] [-orgs 100] [-rows 1000000] [-big 10000]
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
)

//go:embed insert.sql
var insertSQL string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "seedresources:", err)
		os.Exit(1)
	}
}

type options struct {
	url      string
	bigOrg   uuid.UUID
	creator  uuid.UUID
	orgs     int
	rows     int
	big      int
	deadPct  float64
	zipfExp  float64
	randSeed float64
}

func run(ctx context.Context, args []string) error {
	o := options{deadPct: 2, zipfExp: 1, randSeed: 0.42}
	fs := flag.NewFlagSet("seedresources", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", os.Getenv("DATABASE_OWNER_URL"), "owner `URL` of a migrated database (default $DATABASE_OWNER_URL)")
	org := fs.String("org", "", "existing organization `ID` to make the benchmarked tenant (default: a new one)")
	user := fs.String("user", "", "user `ID` recorded as the creator of the benchmarked tenant's resources")
	fs.IntVar(&o.orgs, "orgs", 100, "organizations holding the seeded rows, the benchmarked one included")
	fs.IntVar(&o.rows, "rows", 1_000_000, "rows to add to resources, soft-deleted ones included")
	fs.IntVar(&o.big, "big", 10_000, "live resources of the benchmarked tenant after seeding")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if *org != "" {
		if o.bigOrg, err = uuid.Parse(*org); err != nil {
			return fmt.Errorf("-org: %w", err)
		}
	}
	if *user != "" {
		if o.creator, err = uuid.Parse(*user); err != nil {
			return fmt.Errorf("-user: %w", err)
		}
	}
	if o.url == "" {
		return errors.New("no database: pass -url or set DATABASE_OWNER_URL")
	}
	if o.orgs < 2 || o.big < 1 || o.rows < o.big+o.orgs {
		return errors.New("need -orgs >= 2, -big >= 1 and -rows >= -big + -orgs")
	}
	db, err := postgres.Open(o.url, postgres.Options{MaxOpenConns: 1, MaxIdleConns: 1, ConnMaxLifetime: time.Hour})
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	bigOrg, err := seed(ctx, db, o)
	if err != nil {
		return err
	}
	seeded := time.Since(start)
	// VACUUM cannot run in a transaction; it sets the visibility map and
	// hint bits, so the benchmark's first requests do not pay for them.
	if _, err := db.ExecContext(ctx, `VACUUM (ANALYZE) resources`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	if _, err := db.ExecContext(ctx, `VACUUM (ANALYZE) usage_counters, organizations`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	var total, live, orgs int64
	if err := db.QueryRowxContext(ctx, `SELECT count(*), count(*) FILTER (WHERE deleted_at IS NULL), count(DISTINCT org_id) FROM resources`).Scan(&total, &live, &orgs); err != nil {
		return err
	}
	var bigLive int64
	if err := db.GetContext(ctx, &bigLive, `SELECT count(*) FROM resources WHERE org_id = $1 AND deleted_at IS NULL`, bigOrg); err != nil {
		return err
	}
	fmt.Printf("seeded resources: %d rows (%d live) over %d organizations; tenant %s has %d live; insert and indexes %.1f s, vacuum and analyze %.1f s, total %.1f s\n",
		total, live, orgs, bigOrg, bigLive, seeded.Seconds(), (time.Since(start) - seeded).Seconds(), time.Since(start).Seconds())
	fmt.Printf("BENCH_ORG_ID=%s\n", bigOrg)
	return nil
}

// plan is how many live and soft-deleted rows each organization gets.
type plan struct {
	org        uuid.UUID
	live, dead int
}

// spread splits n rows over k organizations with Zipf-like weights 1/i^s, so
// a few tenants are large and most are small; every one gets at least one.
func spread(n, k int, s float64) []int {
	w, sum := make([]float64, k), 0.0
	for i := range w {
		w[i] = 1 / math.Pow(float64(i+1), s)
		sum += w[i]
	}
	out, given := make([]int, k), 0
	for i := range out {
		out[i] = max(1, int(float64(n)*w[i]/sum))
		given += out[i]
	}
	out[0] += n - given
	return out
}

func seed(ctx context.Context, db *sqlx.DB, o options) (uuid.UUID, error) {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return uuid.Nil, err
	}
	defer func() { _ = tx.Rollback() }()

	var bypass bool
	if err := tx.GetContext(ctx, &bypass, `SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user`); err != nil {
		return uuid.Nil, err
	}
	if !bypass {
		return uuid.Nil, errors.New("the owner URL's role must be a superuser or have BYPASSRLS: resources forces Row Level Security")
	}
	for _, s := range []string{
		`SET LOCAL maintenance_work_mem = '256MB'`,
		`SET LOCAL work_mem = '128MB'`,
		// Nothing is lost but the seed itself if the server crashes now.
		`SET LOCAL synchronous_commit = off`,
		fmt.Sprintf(`SELECT setseed(%g)`, o.randSeed),
	} {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return uuid.Nil, fmt.Errorf("%s: %w", s, err)
		}
	}

	// The benchmarked tenant: an existing organization (the demo's, whose
	// owner logs in) topped up to exactly o.big live rows, or a new one.
	bigOrg, existingLive := o.bigOrg, 0
	if bigOrg == uuid.Nil {
		bigOrg = postgres.NewID()
		if _, err := tx.ExecContext(ctx, `INSERT INTO organizations (id, name, created_at, updated_at) VALUES ($1, 'Bench Tenant', now() - interval '2 years', now() - interval '2 years')`, bigOrg); err != nil {
			return uuid.Nil, fmt.Errorf("create tenant: %w", err)
		}
	} else if err := tx.GetContext(ctx, &existingLive, `SELECT count(*) FROM resources WHERE org_id = $1 AND deleted_at IS NULL`, bigOrg); err != nil {
		return uuid.Nil, fmt.Errorf("tenant: %w", err)
	}
	if existingLive > o.big {
		return uuid.Nil, fmt.Errorf("organization %s already has %d live resources, more than -big %d", bigOrg, existingLive, o.big)
	}
	bigLive := o.big - existingLive
	bigDead := int(math.Round(float64(o.big) * o.deadPct / 100))
	plans := []plan{{org: bigOrg, live: bigLive, dead: bigDead}}
	for _, n := range spread(o.rows-bigLive-bigDead, o.orgs-1, o.zipfExp) {
		dead := int(math.Round(float64(n) * o.deadPct / 100))
		plans = append(plans, plan{org: postgres.NewID(), live: n - dead, dead: dead})
	}

	ids, lives, deads := make([]string, len(plans)), make([]int64, len(plans)), make([]int64, len(plans))
	for i, p := range plans {
		ids[i], lives[i], deads[i] = p.org.String(), int64(p.live), int64(p.dead)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE bench_plan ON COMMIT DROP AS
		SELECT org_id, live, dead, ord FROM unnest($1::uuid[], $2::int[], $3::int[]) WITH ORDINALITY AS p (org_id, live, dead, ord)`,
		postgres.Array(ids), postgres.Array(lives), postgres.Array(deads)); err != nil {
		return uuid.Nil, fmt.Errorf("plan: %w", err)
	}
	const newOrgs = `INSERT INTO organizations (id, name, created_at, updated_at)
		SELECT org_id, 'Bench Org ' || lpad((ord - 1)::text, 3, '0'), now() - interval '2 years', now() - interval '2 years'
		FROM bench_plan WHERE ord > 1`
	if _, err := tx.ExecContext(ctx, newOrgs); err != nil {
		return uuid.Nil, fmt.Errorf("organizations: %w", err)
	}

	// Building the secondary indexes once over the loaded table is several
	// times faster than maintaining them (the trigram GIN above all) row by
	// row. They are rebuilt from pg_get_indexdef, so the migration stays
	// the only definition. The primary key stays: other tables may
	// reference it.
	var defs []struct {
		Name string `db:"name"`
		Def  string `db:"def"`
	}
	if err := tx.SelectContext(ctx, &defs, `SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = 'resources'::regclass AND NOT i.indisprimary AND NOT i.indisunique ORDER BY c.relname`); err != nil {
		return uuid.Nil, fmt.Errorf("indexes: %w", err)
	}
	for _, d := range defs {
		if _, err := tx.ExecContext(ctx, `DROP INDEX `+postgres.QuoteIdentifier(d.Name)); err != nil {
			return uuid.Nil, fmt.Errorf("drop %s: %w", d.Name, err)
		}
	}
	t := time.Now()
	res, err := tx.ExecContext(ctx, insertSQL, creatorArg(o.creator))
	if err != nil {
		return uuid.Nil, fmt.Errorf("insert resources: %w", err)
	}
	n, _ := res.RowsAffected()
	fmt.Fprintf(os.Stderr, "seedresources: inserted %d rows in %.1f s\n", n, time.Since(t).Seconds())
	t = time.Now()
	for _, d := range defs {
		if _, err := tx.ExecContext(ctx, d.Def); err != nil {
			return uuid.Nil, fmt.Errorf("rebuild %s: %w", d.Name, err)
		}
	}
	fmt.Fprintf(os.Stderr, "seedresources: rebuilt %d indexes in %.1f s\n", len(defs), time.Since(t).Seconds())

	// Counted usage matches the table: live rows only (a soft-deleted
	// resource does not count against the plan until it is restored).
	const counters = `INSERT INTO usage_counters (org_id, metric, value)
		SELECT o.id, 'resources', (SELECT count(*) FROM resources r WHERE r.org_id = o.id AND r.deleted_at IS NULL)
		FROM organizations o
		ON CONFLICT (org_id, metric) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`
	if _, err := tx.ExecContext(ctx, counters); err != nil {
		return uuid.Nil, fmt.Errorf("usage counters: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return uuid.Nil, fmt.Errorf("commit: %w", err)
	}
	return bigOrg, nil
}

func creatorArg(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id.String()
}
