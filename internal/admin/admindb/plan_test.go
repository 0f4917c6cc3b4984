package admindb_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/admin/admindb"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/tenant"
)

// planNode is the part of EXPLAIN (FORMAT JSON) the test reads.
type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexName    string     `json:"Index Name"`
	Plans        []planNode `json:"Plans"`
}

func (n planNode) walk(fn func(planNode)) {
	fn(n)
	for _, c := range n.Plans {
		c.walk(fn)
	}
}

// explainer runs each query the store sends, after recording its plan.
type explainer struct {
	sqlx.QueryerContext
	t     *testing.T
	plans []planNode
}

func (e *explainer) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	e.t.Helper()
	var raw string
	if err := e.QueryerContext.QueryRowxContext(ctx, "EXPLAIN (FORMAT JSON) "+query, args...).Scan(&raw); err != nil {
		e.t.Fatalf("explain %s: %v", query, err)
	}
	var out []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil || len(out) != 1 {
		e.t.Fatalf("explain output %s: %v", raw, err)
	}
	e.plans = append(e.plans, out[0].Plan)
	return e.QueryerContext.QueryxContext(ctx, query, args...)
}

func (e *explainer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r, err := e.QueryxContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return r.Rows, nil
}

// The admin lists page through every organization's rows: the
// organizations and the audit log, unfiltered or for one organization, on
// the first page and past a cursor, are ordered index scans (no sort step,
// no sequential scan of the listed table) on tables of many organizations.
func TestAdminListsAreIndexScans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := postgrestest.New(t)
	for _, q := range []string{
		`INSERT INTO organizations (id, name, created_at) SELECT gen_random_uuid(), 'org ' || g, now() - g * interval '1 minute' FROM generate_series(1, 20000) g`,
		`INSERT INTO subscriptions (org_id, plan_id, status) SELECT id, 'pro', 'active' FROM organizations`,
		`INSERT INTO audit_log (id, org_id, action, created_at) SELECT gen_random_uuid(), o.id, 'test.filled', now() - g * interval '1 second'
			FROM (SELECT id, row_number() OVER () AS n FROM organizations LIMIT 500) o, generate_series(1, 100) g`,
		`ANALYZE organizations`, `ANALYZE subscriptions`, `ANALYZE audit_log`,
	} {
		if _, err := db.Owner.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var org uuid.UUID
	if err := db.Owner.Get(&org, `SELECT org_id FROM audit_log LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	cursor := &tenant.Cursor{At: mustTime(t, db), ID: uuid.Max}
	check := func(name, table string, wantIndex []string, run func(q sqlx.QueryerContext) error) {
		t.Helper()
		err := postgres.InTx(ctx, db.Platform, uuid.Nil, func(tx *sqlx.Tx) error {
			e := &explainer{QueryerContext: tx, t: t}
			if err := run(e); err != nil {
				return err
			}
			used := false
			for _, p := range e.plans {
				p.walk(func(n planNode) {
					switch {
					case n.NodeType == "Sort" || n.NodeType == "Incremental Sort":
						t.Errorf("%s: a sort step", name)
					case n.NodeType == "Seq Scan" && n.RelationName == table:
						t.Errorf("%s: a sequential scan of %s", name, table)
					case slices.Contains(wantIndex, n.IndexName):
						used = true
					}
				})
			}
			if !used {
				b, _ := json.Marshal(e.plans)
				t.Errorf("%s: none of %v used: %s", name, wantIndex, b)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, after := range []*tenant.Cursor{nil, cursor} {
		check("organizations", "organizations", []string{"organizations_created_idx"}, func(q sqlx.QueryerContext) error {
			_, err := admindb.Store{}.ListOrgs(ctx, q, admin.OrgQuery{}, after, 21)
			return err
		})
		check("audit log", "audit_log", []string{"audit_log_created_idx"}, func(q sqlx.QueryerContext) error {
			_, err := admindb.Store{}.ListAudit(ctx, q, admin.AuditFilter{}, after, 21)
			return err
		})
		// For one organization the planner picks either index by how
		// many of the rows are its own: both are ordered ranges.
		check("one organization's audit log", "audit_log", []string{"audit_log_org_idx", "audit_log_created_idx"}, func(q sqlx.QueryerContext) error {
			_, err := admindb.Store{}.ListAudit(ctx, q, admin.AuditFilter{OrgID: &org}, after, 21)
			return err
		})
	}
}

// mustTime is a time in the middle of the filled rows, for a cursor.
func mustTime(t *testing.T, db *postgrestest.DB) time.Time {
	t.Helper()
	var at time.Time
	if err := db.Owner.Get(&at, `SELECT now() - interval '3 hours'`); err != nil {
		t.Fatal(err)
	}
	return at
}
