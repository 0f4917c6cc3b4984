package resourcedb

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/resource"
	"github.com/keelhq/keel/internal/tenant"
)

// planNode is the part of EXPLAIN (FORMAT JSON) the test reads.
type planNode struct {
	NodeType  string     `json:"Node Type"`
	IndexName string     `json:"Index Name"`
	Plans     []planNode `json:"Plans"`
}

func (n planNode) walk(fn func(planNode)) {
	fn(n)
	for _, c := range n.Plans {
		c.walk(fn)
	}
}

// Every sort, with and without a status filter, on the first page and past
// a cursor, is an index scan of that sort's index, with no sort step and no
// sequential scan, for an organization with 10,000 resources in a table of
// many organizations, as the API's role under Row Level Security: both as
// planned for the values and as the generic plan the API's prepared
// statement may run.
// KEEL_EXPLAIN_ROWS_PER_ORG and KEEL_EXPLAIN_ORGS scale the table up (docs:
// the benchmark figures); `go test -v` logs EXPLAIN ANALYZE of each query.
func TestListQueriesAreIndexScans(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	org := uuid.New()
	others := envInt("KEEL_EXPLAIN_ORGS", 20)
	perOther := envInt("KEEL_EXPLAIN_ROWS_PER_ORG", 5000)
	// Resource IDs are v7 UUIDs in production: time-ordered, like here.
	const fill = `INSERT INTO resources (org_id, id, name, status, created_at, updated_at)
		SELECT $1::uuid, gen_random_uuid(), md5(g::text || $1::text),
			(ARRAY['draft', 'active', 'active', 'active', 'active', 'active', 'active', 'active', 'active', 'archived'])[1 + g % 10],
			now() - g * interval '1 second', now() - ((g * 7919) % $2::int) * interval '1 second'
		FROM generate_series(1, $2::int) g`
	start := time.Now()
	if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'target')`, org); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(fill, org, 10000); err != nil {
		t.Fatal(err)
	}
	for range others {
		o := uuid.New()
		if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'other')`, o); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Owner.Exec(fill, o, perOther); err != nil {
			t.Fatal(err)
		}
	}
	// A tenth of them soft-deleted, which the partial indexes leave out.
	if _, err := db.Owner.Exec(`UPDATE resources SET deleted_at = now() WHERE (hashtext(id::text) % 10) = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(`VACUUM (ANALYZE) resources`); err != nil {
		t.Fatal(err)
	}
	t.Logf("table: %d + %d × %d rows, filled in %s", 10000, others, perOther, time.Since(start).Round(time.Millisecond))

	wantIndex := map[string]string{"created_at": "resources_created", "updated_at": "resources_updated", "name": "resources_name"}
	err := postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error {
		for _, field := range resource.SortFields {
			for _, desc := range []bool{true, false} {
				for _, status := range []string{"", "active", "archived"} {
					f := resource.Filter{Sort: tenant.Sort{Field: field, Desc: desc}, Status: status}
					first, args := listQuery(org, f, nil, 21)
					rows, err := Store{}.List(ctx, tx, org, f, nil, 21)
					if err != nil {
						return err
					}
					c := tenant.Cursor{At: rows[20].CreatedAt, ID: rows[20].ID}
					switch field {
					case "name":
						c = tenant.Cursor{Text: rows[20].Name, IsText: true, ID: rows[20].ID}
					case "updated_at":
						c.At = rows[20].UpdatedAt
					}
					next, nargs := listQuery(org, f, &c, 21)
					for i, q := range []struct {
						sql  string
						args []any
					}{{first, args}, {next, nargs}, {first, args}, {next, nargs}} {
						// The first two as planned for their values, the
						// last two as the API runs them once a connection
						// has run them a few times: the generic plan of the
						// statement prepared on it (tenant's one-trip read),
						// which PostgreSQL switches to when it costs no more.
						generic := i >= 2
						raw, err := explain(ctx, tx, q.sql, q.args, generic)
						if err != nil {
							return err
						}
						var doc []struct{ Plan planNode }
						if err := json.Unmarshal(raw, &doc); err != nil {
							return err
						}
						if generic && !strings.Contains(string(raw), "$1") {
							t.Errorf("sort %s status %q: not a generic plan: %s", f.Sort, status, raw)
						}
						scans := 0
						doc[0].Plan.walk(func(n planNode) {
							switch n.NodeType {
							case "Index Scan", "Index Only Scan":
								if n.IndexName != wantIndex[field] {
									t.Errorf("sort %s status %q generic %v: scans %s, want %s", f.Sort, status, generic, n.IndexName, wantIndex[field])
								}
								scans++
							case "Seq Scan", "Sort", "Incremental Sort", "Bitmap Heap Scan":
								t.Errorf("sort %s status %q generic %v: plan has a %s", f.Sort, status, generic, n.NodeType)
							}
						})
						if scans != 1 {
							t.Errorf("sort %s status %q: %d index scans: %s", f.Sort, status, scans, raw)
						}
						if testing.Verbose() && !generic {
							var lines []string
							if err := tx.SelectContext(ctx, &lines, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) `+q.sql, q.args...); err != nil {
								return err
							}
							t.Logf("sort=%s status=%q cursor=%v\n%s", f.Sort, status, q.sql == next, strings.Join(lines, "\n"))
						}
					}
				}
			}
		}
		// A search walks the sort's index reading index tuples only, and
		// reads from the table only the page's rows by primary key.
		for _, field := range resource.SortFields {
			for _, status := range []string{"", "archived"} {
				for _, q := range []string{"e3b", "zzz"} {
					f := resource.Filter{Sort: tenant.Sort{Field: field, Desc: true}, Status: status, Q: q}
					first, args := listQuery(org, f, nil, 21)
					c := tenant.Cursor{At: time.Now().Add(-time.Hour), ID: uuid.Max}
					if field == "name" {
						c = tenant.Cursor{Text: "f", IsText: true, ID: uuid.Max}
					}
					next, nargs := listQuery(org, f, &c, 21)
					for i, sql := range []string{first, next, first, next} {
						a := args
						if sql == next {
							a = nargs
						}
						generic := i >= 2
						raw, err := explain(ctx, tx, sql, a, generic)
						if err != nil {
							return err
						}
						var doc []struct{ Plan planNode }
						if err := json.Unmarshal(raw, &doc); err != nil {
							return err
						}
						walks := 0
						doc[0].Plan.walk(func(n planNode) {
							switch {
							case n.NodeType == "Index Only Scan" && n.IndexName == wantIndex[field]:
								walks++
							case n.NodeType == "Index Scan" && n.IndexName == "resources_pkey":
							default:
								if strings.Contains(n.NodeType, "Scan") {
									t.Errorf("q=%q sort %s status %q generic %v: plan has a %s on %s: %s", q, field, status, generic, n.NodeType, n.IndexName, raw)
								}
							}
						})
						if walks != 1 {
							t.Errorf("q=%q sort %s status %q generic %v: %d index-only walks of %s: %s", q, field, status, generic, walks, wantIndex[field], raw)
						}
					}
				}
			}
		}
		if testing.Verbose() {
			for _, q := range []string{"e3b", "ab"} {
				sql, args := listQuery(org, resource.Filter{Sort: resource.DefaultSort, Q: q}, nil, 21)
				var lines []string
				if err := tx.SelectContext(ctx, &lines, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) `+sql, args...); err != nil {
					return err
				}
				t.Logf("q=%q\n%s", q, strings.Join(lines, "\n"))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// explain returns EXPLAIN (FORMAT JSON) of query with args in tx: as
// planned for those values, or, when generic, the generic plan that a
// statement prepared with force_generic_plan runs (PostgreSQL 15 has no
// EXPLAIN (GENERIC_PLAN)).
func explain(ctx context.Context, tx *sqlx.Tx, query string, args []any, generic bool) ([]byte, error) {
	var raw []byte
	if !generic {
		err := tx.GetContext(ctx, &raw, `EXPLAIN (FORMAT JSON) `+query, args...)
		return raw, err
	}
	params := make([]string, len(args))
	for i := range args {
		params[i] = "$" + strconv.Itoa(i+1)
	}
	lits, err := postgres.Inline(strings.Join(params, ", "), args)
	if err != nil {
		return nil, err
	}
	for _, q := range []string{`SET LOCAL plan_cache_mode = force_generic_plan`, `PREPARE plan_test_list AS ` + query} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return nil, err
		}
	}
	if err := tx.GetContext(ctx, &raw, `EXPLAIN (FORMAT JSON) EXECUTE plan_test_list(`+lits+`)`); err != nil {
		return nil, err
	}
	for _, q := range []string{`DEALLOCATE plan_test_list`, `SET LOCAL plan_cache_mode = auto`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return nil, err
		}
	}
	return raw, nil
}

func envInt(name string, def int) int {
	var n int
	if v := os.Getenv(name); v != "" {
		if err := json.Unmarshal([]byte(v), &n); err == nil && n > 0 {
			return n
		}
	}
	return def
}
