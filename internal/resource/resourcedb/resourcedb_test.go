package resourcedb_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/resource"
	"github.com/keelhq/keel/internal/resource/resourcedb"
	"github.com/keelhq/keel/internal/tenant"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// Row Level Security alone keeps organizations apart: in a transaction
// whose tenant is A, every store method called with B's organization and
// B's resource (the application filter naming B, as a bug would) sees and
// changes nothing.
func TestRLSAloneHidesOtherOrganizations(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	a, b := uuid.New(), uuid.New()
	if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'A'), ($2, 'B')`, a, b); err != nil {
		t.Fatal(err)
	}
	var s resourcedb.Store
	now := time.Now().UTC().Truncate(time.Microsecond)
	mk := func(org uuid.UUID, name string, deleted bool) *resource.Resource {
		r := &resource.Resource{ID: postgres.NewID(), OrgID: org, Name: name, Status: "active", Attributes: json.RawMessage(`{}`), Version: 1, CreatedAt: now.Add(-40 * 24 * time.Hour)}
		err := postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error {
			if err := s.Create(ctx, tx, r); err != nil {
				return err
			}
			if deleted {
				at := now.Add(-35 * 24 * time.Hour)
				_, err := s.SetDeleted(ctx, tx, org, r.ID, &at)
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	mk(a, "a", false)
	bLive, bGone := mk(b, "b", false), mk(b, "b gone", true)

	err := postgres.InTx(ctx, db.App, a, func(tx *sqlx.Tx) error {
		for _, id := range []uuid.UUID{bLive.ID, bGone.ID} {
			for _, org := range []uuid.UUID{a, b} { // A's filter (the app's) and B's (RLS alone)
				if _, err := s.Get(ctx, tx, org, id, true); !errors.Is(err, resource.ErrNotFound) {
					t.Errorf("get %s in %s: %v", id, org, err)
				}
				if _, err := s.SetDeleted(ctx, tx, org, id, nil); !errors.Is(err, resource.ErrNotFound) {
					t.Errorf("set deleted %s in %s: %v", id, org, err)
				}
				u := *bLive
				u.OrgID, u.ID, u.Name = org, id, "hijacked"
				if err := s.Update(ctx, tx, &u); !errors.Is(err, resource.ErrNotFound) {
					t.Errorf("update %s in %s: %v", id, org, err)
				}
				if n, err := s.Purge(ctx, tx, org, []uuid.UUID{id}); n != 0 || err != nil {
					t.Errorf("purge %s in %s: %d %v", id, org, n, err)
				}
			}
		}
		for _, sort := range []tenant.Sort{{Field: "created_at"}, {Field: "name", Desc: true}} {
			rows, err := s.List(ctx, tx, b, resource.Filter{Sort: sort, Q: "b"}, nil, 10)
			if err != nil || len(rows) != 0 {
				t.Errorf("list B's under A: %d rows, %v", len(rows), err)
			}
		}
		ids, err := s.Purgeable(ctx, tx, b, now, 10)
		if err != nil || len(ids) != 0 {
			t.Errorf("purgeable B's under A: %v %v", ids, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := db.Owner.Select(&names, `SELECT name FROM resources WHERE org_id = $1 AND (deleted_at IS NULL) = (id = $2) ORDER BY name`, b, bLive.ID); err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "b" || names[1] != "b gone" {
		t.Fatalf("B's rows changed: %q", names)
	}
	// B's own tenant sees them.
	err = postgres.InTx(ctx, db.App, b, func(tx *sqlx.Tx) error {
		ids, err := s.Purgeable(ctx, tx, b, now.Add(-30*24*time.Hour), 10)
		if err != nil || len(ids) != 1 || ids[0] != bGone.ID {
			t.Errorf("purgeable in B: %v %v", ids, err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
