package tenant_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// assumeQuery is a guard whose condition the test decides: $1 is whether
// it holds, $2 names it.
const assumeQuery = `SELECT keel_assume($1, $2)`

// writeEntry is a write under RLS that returns a row: an audit entry of
// the tenant, marked so the test can count it.
func writeEntry(org uuid.UUID, mark string) postgres.Stmt {
	return postgres.Stmt{Query: `INSERT INTO audit_log (id, org_id, action) VALUES ($1, $2, $3) RETURNING action`,
		Args: []any{uuid.New(), org, mark}}
}

func (f *fixture) entries(t *testing.T, mark string) int {
	t.Helper()
	var n int
	if err := f.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE action = $1`, mark); err != nil {
		t.Fatal(err)
	}
	return n
}

// WriteOnce runs a permitted caller's statements and refuses, with nothing
// written, every caller InOrg would refuse: the attacker's sequences of
// TestInOrg (a demoted member's old owner token, a removed member, a
// suspended organization, a disabled user, a deleted organization), each
// sent as one message.
func TestWriteOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	user := func(id, org uuid.UUID, tokenRole string) *tenant.Principal {
		return &tenant.Principal{UserID: id, OrgID: org, Role: tokenRole}
	}
	n := 0
	write := func(p *tenant.Principal, min string) (string, bool, error) {
		n++
		mark := "write-" + string(rune('a'+n))
		var got string
		done, err := tenant.WriteOnce(ctx, f.db.App, p, min, []postgres.Stmt{writeEntry(p.OrgID, mark)}, func(rows *sqlx.Rows) error {
			for rows.Next() {
				if err := rows.Scan(&got); err != nil {
					return err
				}
			}
			return rows.Err()
		})
		if want := map[bool]int{true: 1, false: 0}[done && err == nil]; f.entries(t, mark) != want {
			t.Errorf("%+v (min %s): done %v, err %v, but %d rows written", p, min, done, err, f.entries(t, mark))
		}
		if done && err == nil && got != mark {
			t.Errorf("read got %q, want the INSERT's row %q", got, mark)
		}
		return mark, done, err
	}
	for _, c := range []struct {
		name string
		p    *tenant.Principal
		min  string
	}{
		{"owner as admin", user(f.owner, f.org, "member"), tenant.RoleAdmin},
		{"owner as owner", user(f.owner, f.org, "owner"), tenant.RoleOwner},
		{"member as member", user(f.member, f.org, "member"), tenant.RoleMember},
		{"admin API key as admin", &tenant.Principal{APIKeyID: uuid.New(), OrgID: f.org, Role: tenant.RoleAdmin}, tenant.RoleAdmin},
	} {
		if _, done, err := write(c.p, c.min); !done || err != nil {
			t.Fatalf("%s: done %v, %v", c.name, done, err)
		}
	}
	refused := func(name string, p *tenant.Principal, min string) {
		t.Helper()
		if _, done, err := write(p, min); done || err != nil {
			t.Errorf("%s: done %v, %v; want the message refused (done false, nil) and nothing kept", name, done, err)
		}
	}
	refused("member with an owner token, as admin", user(f.member, f.org, "owner"), tenant.RoleAdmin)
	refused("member as owner", user(f.member, f.org, "member"), tenant.RoleOwner)
	refused("non-member", user(f.alien, f.org, "owner"), tenant.RoleMember)
	refused("deleted organization", user(f.owner, uuid.New(), "owner"), tenant.RoleMember)
	refused("member API key as admin", &tenant.Principal{APIKeyID: uuid.New(), OrgID: f.org, Role: tenant.RoleMember}, tenant.RoleAdmin)
	refused("support access", &tenant.Principal{UserID: f.owner, OrgID: f.org, Role: "owner", ActorID: uuid.New()}, tenant.RoleMember)

	if _, err := f.db.Owner.Exec(`UPDATE users SET disabled_at = now() WHERE id = $1`, f.member); err != nil {
		t.Fatal(err)
	}
	refused("disabled user", user(f.member, f.org, "member"), tenant.RoleMember)
	if _, err := f.db.Owner.Exec(`UPDATE organizations SET suspended_at = $2 WHERE id = $1`, f.org, time.Now()); err != nil {
		t.Fatal(err)
	}
	refused("suspended organization", user(f.owner, f.org, "owner"), tenant.RoleMember)
	refused("API key of a suspended organization", &tenant.Principal{APIKeyID: uuid.New(), OrgID: f.org, Role: tenant.RoleOwner}, tenant.RoleMember)
	if _, done, err := write(&tenant.Principal{UserID: f.owner}, tenant.RoleMember); done || !errors.Is(err, tenant.ErrNoOrg) {
		t.Errorf("no organization: done %v, %v", done, err)
	}
}

// A message is one transaction: a failing statement, or a failing guard,
// after a write leaves nothing of it. The guard's failure hands the write
// back (done false); any other error is the write's answer.
func TestWriteOnceIsAtomic(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	p := &tenant.Principal{UserID: f.alien, OrgID: f.other, Role: "owner"} // the other organization's owner
	send := func(mark string, after postgres.Stmt) (bool, error) {
		return tenant.WriteOnce(ctx, f.db.App, p, tenant.RoleMember, []postgres.Stmt{writeEntry(p.OrgID, mark), after}, nil)
	}
	done, err := send("then-guard", postgres.Stmt{Query: assumeQuery, Args: []any{false, "test"}})
	if done || err != nil {
		t.Fatalf("failed guard: done %v, %v; want done false and no error", done, err)
	}
	done, err = send("then-error", postgres.Stmt{Query: `SELECT 1 / $1::int`, Args: []any{int64(0)}})
	if !done || err == nil || !strings.Contains(err.Error(), "division by zero") {
		t.Fatalf("failing statement: done %v, %v; want done and the division by zero", done, err)
	}
	done, err = send("then-guard-holds", postgres.Stmt{Query: assumeQuery, Args: []any{true, "test"}})
	if !done || err != nil {
		t.Fatalf("guard that holds: done %v, %v", done, err)
	}
	for mark, want := range map[string]int{"then-guard": 0, "then-error": 0, "then-guard-holds": 1} {
		if got := f.entries(t, mark); got != want {
			t.Errorf("%s: %d rows kept, want %d", mark, got, want)
		}
	}
	// The connections that failed were given back or dropped cleanly: the
	// pool still serves writes.
	for i := range 5 {
		if done, err := send("after-"+string(rune('0'+i)), postgres.Stmt{Query: assumeQuery, Args: []any{true, "test"}}); !done || err != nil {
			t.Fatalf("write %d after the failures: done %v, %v", i, done, err)
		}
	}
}

// A message that finds one of its prepared statements gone from its
// connection mid-way (someone ran DEALLOCATE) keeps nothing and hands the
// write back (done false) for the transaction to run, as InOrg runs its
// transaction again; the connection is dropped and the next message
// prepares afresh.
func TestWriteOnceLostStatement(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	db, err := postgres.Open(f.db.AppURL, postgres.Options{MaxOpenConns: 1, MaxIdleConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p := &tenant.Principal{UserID: f.owner, OrgID: f.org, Role: "owner"}
	// An INSERT whose parameter types no other statement of the message
	// has, so the test can find it among the connection's statements.
	write := func(mark string) (bool, error) {
		return tenant.WriteOnce(ctx, db, p, tenant.RoleMember, []postgres.Stmt{{
			Query: `INSERT INTO audit_log (id, org_id, action, target_type) VALUES ($1, $2, $3, $4)`,
			Args:  []any{uuid.New(), p.OrgID, mark, "lost-statement"}}}, nil)
	}
	if done, err := write("first"); !done || err != nil {
		t.Fatalf("first write: done %v, %v", done, err)
	}
	// The pool's one connection loses the INSERT's statement, after the
	// tenant setting and the guard, which still run. (Its source text is
	// the whole message that prepared it; its types tell it apart.)
	var name string
	if err := db.Get(&name, `SELECT name FROM pg_prepared_statements WHERE parameter_types::text = '{uuid,uuid,text,text}'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DEALLOCATE ` + name); err != nil {
		t.Fatal(err)
	}
	if done, err := write("lost"); done || err != nil {
		t.Fatalf("write whose statement was gone: done %v, %v; want done false and no error", done, err)
	}
	if done, err := write("after"); !done || err != nil {
		t.Fatalf("write after: done %v, %v", done, err)
	}
	for mark, want := range map[string]int{"first": 1, "lost": 0, "after": 1} {
		if got := f.entries(t, mark); got != want {
			t.Errorf("%s: %d rows, want %d", mark, got, want)
		}
	}
}
