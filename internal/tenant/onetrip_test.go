package tenant_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/tenant"
)

// ListSorted reads in one round trip (set tenant, caller check, query in
// one message); it must refuse exactly as InOrg does, read under the
// caller's RLS only, and leave no tenant on the pooled connection.
func TestListSortedOneTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.db.App.SetMaxOpenConns(1) // every read below shares one connection
	sort := tenant.Sort{Field: "created_at"}
	type row struct {
		OrgID     uuid.UUID `db:"org_id"`
		UserID    uuid.UUID `db:"user_id"`
		CreatedAt time.Time `db:"created_at"`
	}
	run := func(p *tenant.Principal, min string, query string) ([]row, error) {
		rows, _, err := tenant.ListSorted(ctx, f.db.App, p, tenant.Page{Limit: 10}, sort, min,
			func(q tenant.Querier, after *tenant.Cursor, limit int) ([]row, error) {
				var out []row
				err := tenant.Select(ctx, q, &out, query, limit)
				return out, err
			}, func(r *row) tenant.Cursor { return tenant.Cursor{At: r.CreatedAt, ID: r.UserID} })
		return rows, err
	}
	// No WHERE on org_id: RLS alone keeps the read to the caller's tenant.
	const all = `SELECT org_id, user_id, created_at FROM memberships ORDER BY created_at LIMIT $1`
	user := func(id, org uuid.UUID) *tenant.Principal {
		return &tenant.Principal{UserID: id, OrgID: org, Role: "owner"}
	}
	rows, err := run(user(f.owner, f.org), tenant.RoleMember, all)
	if err != nil || len(rows) != 2 {
		t.Fatalf("owner: %d rows, %v", len(rows), err)
	}
	for _, r := range rows {
		if r.OrgID != f.org {
			t.Fatalf("read another tenant's row %+v", r)
		}
	}
	var leaked string
	if err := f.db.App.Get(&leaked, `SELECT COALESCE(current_setting('app.org_id', true), '')`); err != nil || leaked != "" {
		t.Fatalf("the pooled connection kept tenant %q (%v)", leaked, err)
	}
	for _, c := range []struct {
		name string
		p    *tenant.Principal
		min  string
		want error
	}{
		{"member acting as admin", user(f.member, f.org), tenant.RoleAdmin, tenant.ErrForbidden},
		{"non-member", user(f.alien, f.org), tenant.RoleMember, tenant.ErrNotMember},
		{"no organization", &tenant.Principal{UserID: f.owner}, tenant.RoleMember, tenant.ErrNoOrg},
		{"deleted organization", user(f.owner, uuid.New()), tenant.RoleMember, tenant.ErrOrgGone},
		{"key below the role", &tenant.Principal{APIKeyID: uuid.New(), OrgID: f.org, Role: tenant.RoleMember}, tenant.RoleAdmin, tenant.ErrForbidden},
	} {
		if rows, err := run(c.p, c.min, all); !errors.Is(err, c.want) || rows != nil {
			t.Errorf("%s: %d rows, %v; want %v", c.name, len(rows), err, c.want)
		}
	}
	// A failing read is an error, not an empty page, and leaves the
	// connection usable.
	if _, err := run(user(f.owner, f.org), tenant.RoleMember, `SELECT org_id, user_id, created_at FROM memberships WHERE 1/0 = 1 LIMIT $1`); err == nil {
		t.Fatal("a read that divides by zero passed")
	}
	if _, err := f.db.Owner.Exec(`UPDATE organizations SET suspended_at = now() WHERE id = $1`, f.org); err != nil {
		t.Fatal(err)
	}
	key := &tenant.Principal{APIKeyID: uuid.New(), OrgID: f.org, Role: tenant.RoleAdmin}
	for _, p := range []*tenant.Principal{user(f.owner, f.org), key} {
		if _, err := run(p, tenant.RoleMember, all); !errors.Is(err, tenant.ErrSuspended) {
			t.Fatalf("suspended: %v", err)
		}
	}
}
