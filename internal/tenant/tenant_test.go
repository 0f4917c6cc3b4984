package tenant_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/tenant"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// fixture is one organization with an owner and a member, and a second
// organization, written as the owner role (outside RLS).
type fixture struct {
	db                   *postgrestest.DB
	org, other           uuid.UUID
	owner, member, alien uuid.UUID
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{db: postgrestest.New(t), org: uuid.New(), other: uuid.New(), owner: uuid.New(), member: uuid.New(), alien: uuid.New()}
	o := f.db.Owner
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO organizations (id, name) VALUES ($1, 'A'), ($2, 'B')`, []any{f.org, f.other}},
		{`INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'o@x.test', 'O', 'x'), ($2, 'm@x.test', 'M', 'x'), ($3, 'a@x.test', 'A', 'x')`, []any{f.owner, f.member, f.alien}},
		{`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'member'), ($4, $5, 'owner')`, []any{f.org, f.owner, f.member, f.other, f.alien}},
	} {
		if _, err := o.Exec(q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestInOrg(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	user := func(id, org uuid.UUID, tokenRole string) *tenant.Principal {
		return &tenant.Principal{UserID: id, OrgID: org, Role: tokenRole}
	}
	run := func(p *tenant.Principal, min string) (string, error) {
		var got string
		err := tenant.InOrg(ctx, f.db.App, p, min, func(tx *sqlx.Tx, role string) error {
			// The work runs under the caller's tenant: RLS shows only its
			// organization's memberships.
			var orgs []uuid.UUID
			if err := sqlx.SelectContext(ctx, tx, &orgs, `SELECT DISTINCT org_id FROM memberships`); err != nil {
				return err
			}
			if len(orgs) != 1 || orgs[0] != p.OrgID {
				t.Errorf("tenant transaction sees memberships of %v, want only %v", orgs, p.OrgID)
			}
			got = role
			return nil
		})
		return got, err
	}

	if role, err := run(user(f.owner, f.org, "member"), tenant.RoleAdmin); err != nil || role != tenant.RoleOwner {
		t.Fatalf("owner: role %q, %v; want the membership's role, not the token's", role, err)
	}
	// A token minted as owner does not outlive a demotion.
	if _, err := run(user(f.member, f.org, "owner"), tenant.RoleAdmin); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("member acting as admin: %v, want ErrForbidden", err)
	}
	if role, err := run(user(f.member, f.org, "member"), tenant.RoleMember); err != nil || role != tenant.RoleMember {
		t.Fatalf("member: %q, %v", role, err)
	}
	// A user of another organization holding a token for this one (or a
	// removed member) is refused.
	if _, err := run(user(f.alien, f.org, "owner"), tenant.RoleMember); !errors.Is(err, tenant.ErrNotMember) {
		t.Fatalf("non-member: %v, want ErrNotMember", err)
	}
	// API keys act with their own role.
	key := &tenant.Principal{APIKeyID: uuid.New(), OrgID: f.org, Role: tenant.RoleAdmin}
	if role, err := run(key, tenant.RoleAdmin); err != nil || role != tenant.RoleAdmin {
		t.Fatalf("api key: %q, %v", role, err)
	}
	if _, err := run(&tenant.Principal{UserID: f.owner}, tenant.RoleMember); !errors.Is(err, tenant.ErrNoOrg) {
		t.Fatalf("no organization: %v", err)
	}
	if _, err := run(user(f.owner, uuid.New(), "owner"), tenant.RoleMember); !errors.Is(err, tenant.ErrOrgGone) {
		t.Fatalf("deleted organization: %v", err)
	}

	// A suspension refuses everyone, API keys included, from the next
	// transaction on.
	if _, err := f.db.Owner.Exec(`UPDATE organizations SET suspended_at = $2 WHERE id = $1`, f.org, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*tenant.Principal{user(f.owner, f.org, "owner"), key} {
		if _, err := run(p, tenant.RoleMember); !errors.Is(err, tenant.ErrSuspended) {
			t.Fatalf("suspended organization: %v, want ErrSuspended", err)
		}
	}
	if err := tenant.CheckActive(ctx, f.db.App, f.org); !errors.Is(err, tenant.ErrSuspended) {
		t.Fatalf("CheckActive on a suspended organization: %v", err)
	}
	if err := tenant.CheckActive(ctx, f.db.App, f.other); err != nil {
		t.Fatalf("CheckActive on an active organization: %v", err)
	}
	if err := tenant.CheckActive(ctx, f.db.App, uuid.Nil); err != nil {
		t.Fatalf("CheckActive without an organization: %v", err)
	}
}

// A failing fn rolls back everything it wrote.
func TestInOrgRollsBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := tenant.InOrg(ctx, f.db.App, &tenant.Principal{UserID: f.owner, OrgID: f.org}, tenant.RoleOwner, func(tx *sqlx.Tx, _ string) error {
		if _, err := tx.ExecContext(ctx, `UPDATE memberships SET role = 'admin' WHERE org_id = $1 AND user_id = $2`, f.org, f.member); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InOrg returned %v, want fn's error", err)
	}
	var role string
	if err := f.db.Owner.Get(&role, `SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2`, f.org, f.member); err != nil || role != "member" {
		t.Fatalf("after rollback the role is %q (%v)", role, err)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 9, 30, 0, 123456000, time.UTC)
	id := uuid.New()
	c, err := tenant.ParseCursor(tenant.EncodeCursor(at, id))
	if err != nil || !c.At.Equal(at) || c.ID != id {
		t.Fatalf("round trip: %+v %v", c, err)
	}
	for _, bad := range []string{"x", "!!!", "MjAyNg", "bm90fGF8dXVpZA"} {
		if _, err := tenant.ParseCursor(bad); err == nil {
			t.Errorf("ParseCursor(%q) accepted a cursor this API never made", bad)
		}
	}
	if c, err := tenant.ParseCursor(""); c != nil || err != nil {
		t.Fatalf("empty cursor: %v %v", c, err)
	}
}

func TestKeyset(t *testing.T) {
	t.Parallel()
	org := uuid.New()
	q, args := tenant.Keyset(`SELECT id FROM t WHERE org_id = $1`, "created_at, id", true, org, nil, 5000)
	if q != `SELECT id FROM t WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT 20` || len(args) != 1 {
		t.Fatalf("first page: %s %v", q, args)
	}
	after := &tenant.Cursor{At: time.Now(), ID: uuid.New()}
	q, args = tenant.Keyset(`SELECT id FROM t WHERE org_id = $1`, "created_at, id", false, org, after, 21)
	if q != `SELECT id FROM t WHERE org_id = $1 AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT 21` || len(args) != 3 {
		t.Fatalf("next page: %s %v", q, args)
	}
}

func TestSortedCursor(t *testing.T) {
	t.Parallel()
	byName := tenant.Sort{Field: "name"}
	newest := tenant.Sort{Field: "created_at", Desc: true}
	id := uuid.New()
	c, err := tenant.ParseSortedCursor(tenant.EncodeSortedCursor(tenant.Cursor{Sort: "name", Text: "a|b\"c", IsText: true, ID: id}), byName)
	if err != nil || c.Text != "a|b\"c" || !c.IsText || c.ID != id || c.Key() != "a|b\"c" {
		t.Fatalf("text cursor: %+v %v", c, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	c, err = tenant.ParseSortedCursor(tenant.EncodeSortedCursor(tenant.Cursor{Sort: "-created_at", At: at, ID: id}), newest)
	if err != nil || !c.At.Equal(at) || c.IsText || c.Key() != any(c.At) {
		t.Fatalf("time cursor: %+v %v", c, err)
	}
	// A cursor continues only its own sort; unsorted cursors are not sorted ones.
	for _, bad := range []string{
		tenant.EncodeSortedCursor(tenant.Cursor{Sort: "name", Text: "x", IsText: true, ID: id}),
		tenant.EncodeCursor(at, id),
		"!!",
	} {
		if _, err := tenant.ParseSortedCursor(bad, newest); err == nil {
			t.Errorf("ParseSortedCursor(%q, -created_at) accepted it", bad)
		}
	}
	// A forged name key holding a NUL is refused as a bad cursor (400), not
	// sent to a query that would fail with a 500.
	if _, err := tenant.ParseSortedCursor(tenant.EncodeSortedCursor(tenant.Cursor{Sort: "name", Text: "a\x00b", IsText: true, ID: id}), byName); !isValidation(err) {
		t.Errorf("NUL in a cursor key: %v", err)
	}
	if s, err := tenant.ParseSort("", []string{"name"}, newest); err != nil || s != newest {
		t.Fatalf("default sort: %v %v", s, err)
	}
	if s, err := tenant.ParseSort("-name", []string{"name"}, newest); err != nil || s.String() != "-name" {
		t.Fatalf("-name: %v %v", s, err)
	}
	for _, bad := range []string{"id", "--name", "-", "name "} {
		if _, err := tenant.ParseSort(bad, []string{"name"}, newest); err == nil {
			t.Errorf("ParseSort(%q) accepted it", bad)
		}
	}
	q, args := tenant.KeysetBy(`SELECT id FROM t WHERE org_id = $1 AND status = $2`, []any{uuid.New(), "x"}, `name COLLATE "C"`, "id", true,
		&tenant.Cursor{Text: "m", IsText: true, ID: id}, 21)
	if q != `SELECT id FROM t WHERE org_id = $1 AND status = $2 AND (name COLLATE "C", id) < ($3, $4) ORDER BY name COLLATE "C" DESC, id DESC LIMIT 21` ||
		len(args) != 4 || args[2] != "m" || args[3] != id {
		t.Fatalf("KeysetBy: %s %v", q, args)
	}
}

func isValidation(err error) bool {
	e, ok := apperr.As(err)
	return ok && e.Code == "validation_failed"
}
