package migrate_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

// 00420 lets link rows wait for the worker to mint their token
// (token_hash NULL). Its Down, run by a schema owner that is not a
// superuser (so FORCE ROW LEVEL SECURITY binds it on invitations), gives
// such rows a placeholder no token hashes to, and the schema goes back to
// NOT NULL.
func TestMintedLinksMigrationStepsDownWithUnmintedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := postgrestest.NewEmpty(t)
	admin := mustOpen(t, e.OwnerURL)
	owner := e.AppRole + "_owner" // a fresh name; EnsureAppRole is not used here
	q := postgres.QuoteIdentifier(owner)
	for _, s := range []string{"CREATE ROLE " + q + " LOGIN PASSWORD 'owner'", "ALTER DATABASE " + postgres.QuoteIdentifier(e.Name) + " OWNER TO " + q,
		"ALTER SCHEMA public OWNER TO " + q} {
		if _, err := admin.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() {
		a := mustOpen(t, postgrestest.AdminURL())
		for _, s := range []string{"DROP DATABASE IF EXISTS " + postgres.QuoteIdentifier(e.Name) + " WITH (FORCE)", "DROP ROLE IF EXISTS " + q} {
			if _, err := a.Exec(s); err != nil {
				t.Errorf("cleanup: %s: %v", s, err)
			}
		}
	})
	ownerURL := postgrestest.URL(e.Name, owner, "owner")
	m := mustNew(t, ownerURL)
	if err := m.Up(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, ownerURL)
	org, inv, user, tok := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		q    string
		args []any
	}{
		{`SELECT set_config('app.org_id', $1, true)`, []any{org.String()}},
		{`INSERT INTO organizations (id, name) VALUES ($1, 'A')`, []any{org}},
		{`INSERT INTO invitations (id, org_id, email, role, token_hash, expires_at) VALUES ($1, $2, 'i@x.test', 'owner', NULL, now() + interval '1 day')`, []any{inv, org}},
		{`INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'u@x.test', 'U', 'x')`, []any{user}},
		{`INSERT INTO email_tokens (id, user_id, purpose, email, token_hash, expires_at) VALUES ($1, $2, 'reset_password', 'u@x.test', NULL, now() + interval '1 hour')`, []any{tok, user}},
	} {
		if _, err := tx.Exec(s.q, s.args...); err != nil {
			t.Fatalf("%s: %v", s.q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// Step down through any later migrations to 00420's own down.
	var out bytes.Buffer
	for i := 0; !bytes.Contains(out.Bytes(), []byte("00420")); i++ {
		if err := m.Down(ctx, &out); err != nil || i > 20 {
			t.Fatalf("down: %v\n%s", err, out.String())
		}
	}
	var invLen, tokLen int
	var forced bool
	if err := admin.QueryRow(`SELECT octet_length(token_hash) FROM invitations WHERE id = $1`, inv).Scan(&invLen); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueryRow(`SELECT octet_length(token_hash) FROM email_tokens WHERE id = $1`, tok).Scan(&tokLen); err != nil {
		t.Fatal(err)
	}
	if invLen != 16 || tokLen != 16 {
		t.Fatalf("placeholders of %d and %d bytes, want 16 (no SHA-256 is)", invLen, tokLen)
	}
	if err := admin.QueryRow(`SELECT relforcerowsecurity FROM pg_class WHERE relname = 'invitations'`).Scan(&forced); err != nil || !forced {
		t.Fatalf("invitations no longer forces RLS (%v)", err)
	}
	if err := m.Up(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
}
