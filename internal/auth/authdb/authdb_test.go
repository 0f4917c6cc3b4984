package authdb_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// The memberships kept on the user's row (what GET /me reads) equal the
// memberships table after every kind of change, made as the application
// role under RLS the way the API makes them.
func TestProfileMembershipsFollowChanges(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	user, other := uuid.New(), uuid.New()
	orgA, orgB := uuid.New(), uuid.New()
	owner := db.Owner
	mustOwner := func(q string, args ...any) {
		t.Helper()
		if _, err := owner.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	asTenant := func(org uuid.UUID, q string, args ...any) {
		t.Helper()
		err := postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error {
			_, err := tx.ExecContext(ctx, q, args...)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustOwner(`INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'u@x.test', 'U', 'x'), ($2, 'o@x.test', 'O', 'x')`, user, other)
	mustOwner(`INSERT INTO organizations (id, name) VALUES ($1, 'A'), ($2, 'B')`, orgA, orgB)

	check := func(step string, activeOrg uuid.UUID) *auth.Profile {
		t.Helper()
		p, err := authdb.Store{}.Profile(ctx, db.App, user, activeOrg)
		if err != nil {
			t.Fatalf("%s: profile: %v", step, err)
		}
		want := []auth.Membership{}
		if err := owner.Select(&want, `SELECT org_id AS "orgid", org_name AS "orgname", role AS "role", joined_at AS "joinedat", suspended AS "suspended"
			FROM identity_user_memberships($1)`, user); err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(p.Memberships)
		exp, _ := json.Marshal(want)
		if string(got) != string(exp) {
			t.Fatalf("%s: memberships on the user row\n %s\nwant\n %s", step, got, exp)
		}
		return p
	}
	check("no memberships", uuid.Nil)
	asTenant(orgA, `INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'member')`, orgA, user)
	asTenant(orgB, `INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'member')`, orgB, user, other)
	check("joined two", orgA)
	asTenant(orgA, `UPDATE memberships SET role = 'admin' WHERE org_id = $1 AND user_id = $2`, orgA, user)
	check("promoted", orgA)
	mustOwner(`UPDATE organizations SET name = 'A renamed' WHERE id = $1`, orgA)
	check("renamed", orgA)
	mustOwner(`UPDATE organizations SET suspended_at = now() WHERE id = $1`, orgB)
	if p := check("suspended", orgB); !p.ActiveOrgSuspended {
		t.Fatal("the active organization's suspension is not reported")
	}
	asTenant(orgA, `DELETE FROM memberships WHERE org_id = $1 AND user_id = $2`, orgA, user)
	// Removed from its active organization, the user is told nothing
	// happened to it (it is not suspended, and it exists).
	if p := check("removed", orgA); p.ActiveOrgSuspended || p.ActiveOrgGone {
		t.Fatalf("removed member's view of A: %+v", p)
	}
	mustOwner(`DELETE FROM organizations WHERE id = $1`, orgB)
	if p := check("organization deleted", orgB); !p.ActiveOrgGone {
		t.Fatal("a deleted active organization is not reported")
	}
	// The other member's summary was kept too.
	var n int
	if err := owner.Get(&n, `SELECT jsonb_array_length(memberships) FROM users WHERE id = $1`, other); err != nil || n != 0 {
		t.Fatalf("other user's summary has %d memberships after B was deleted (%v)", n, err)
	}
}

// A link row the worker has not minted yet (token_hash NULL) is matched by
// no presented token, whatever it hashes to, and cannot be minted once
// voided.
func TestUnmintedLinksMatchNoToken(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	s := authdb.Store{}
	user, id := uuid.New(), uuid.New()
	db.Owner.MustExec(`INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'u@x.test', 'U', 'x')`, user)
	if err := s.CreateEmailToken(ctx, db.App, &auth.EmailToken{ID: id, UserID: user, Purpose: auth.PurposeResetPassword,
		Email: "u@x.test", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for name, hash := range map[string][]byte{"nil": nil, "empty": {}, "hash of empty": auth.HashToken("")} {
		if _, err := s.UseEmailToken(ctx, db.App, auth.PurposeResetPassword, hash); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("%s hash matched an unminted row: %v", name, err)
		}
	}
	if _, err := s.EmailTokenToMail(ctx, db.App, id, false); err != nil {
		t.Fatalf("live unminted row: %v", err)
	}
	// Minted once, it is mailed again only by the send that minted it
	// (again), and minting again replaces the hash.
	if _, err := s.MintEmailToken(ctx, db.App, id, auth.HashToken("first"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EmailTokenToMail(ctx, db.App, id, false); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("a minted row is still to be mailed: %v", err)
	}
	if _, err := s.MintEmailToken(ctx, db.App, id, auth.HashToken("second"), false); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("a minted row was minted again without again: %v", err)
	}
	if _, err := s.EmailTokenToMail(ctx, db.App, id, true); err != nil {
		t.Fatalf("a minted row cannot be mailed again: %v", err)
	}
	if _, err := s.MintEmailToken(ctx, db.App, id, auth.HashToken("second"), true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseEmailToken(ctx, db.App, auth.PurposeResetPassword, auth.HashToken("first")); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("the replaced token still works: %v", err)
	}
	if err := s.VoidEmailTokens(ctx, db.App, user); err != nil {
		t.Fatal(err)
	}
	for _, again := range []bool{false, true} {
		if _, err := s.EmailTokenToMail(ctx, db.App, id, again); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("voided row still to be mailed (again %v): %v", again, err)
		}
		if _, err := s.MintEmailToken(ctx, db.App, id, auth.HashToken("late"), again); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("a voided row was minted (again %v): %v", again, err)
		}
	}
}
