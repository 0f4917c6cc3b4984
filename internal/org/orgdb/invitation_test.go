package orgdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

// An invitation the worker has not minted yet (token_hash NULL) is found
// by no presented token; it is minted once, and then only its own token
// finds it.
func TestUnmintedInvitationMatchesNoToken(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	s := orgdb.Store{}
	orgID, id := uuid.New(), uuid.New()
	db.Owner.MustExec(`INSERT INTO organizations (id, name) VALUES ($1, 'A')`, orgID)
	inTx := func(tenant uuid.UUID, fn func(tx *sqlx.Tx) error) error {
		return postgres.InTx(ctx, db.App, tenant, fn)
	}
	if err := inTx(orgID, func(tx *sqlx.Tx) error {
		return s.PutInvitation(ctx, tx, &org.Invitation{ID: id, OrgID: orgID, Email: "i@x.test", Role: "owner", ExpiresAt: time.Now().Add(time.Hour)})
	}); err != nil {
		t.Fatal(err)
	}
	lookup := func(hash []byte) error {
		return inTx(uuid.Nil, func(tx *sqlx.Tx) error { _, err := s.InvitationByToken(ctx, tx, hash); return err })
	}
	for name, hash := range map[string][]byte{"nil": nil, "empty": {}, "hash of empty": auth.HashToken("")} {
		if err := lookup(hash); !errors.Is(err, postgres.ErrNotFound) {
			t.Errorf("%s hash found an unminted invitation: %v", name, err)
		}
	}
	tok, hash := auth.NewOpaqueToken()
	mint := func() error {
		return inTx(orgID, func(tx *sqlx.Tx) error { return s.MintInvitation(ctx, tx, orgID, id, hash, false) })
	}
	if err := mint(); err != nil {
		t.Fatal(err)
	}
	if err := mint(); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("minted twice: %v", err)
	}
	if err := lookup(auth.HashToken(tok)); err != nil {
		t.Fatalf("the minted token finds nothing: %v", err)
	}
	// A send made again mints anew: the new token works, the old one not.
	tok2, hash2 := auth.NewOpaqueToken()
	if err := inTx(orgID, func(tx *sqlx.Tx) error { return s.MintInvitation(ctx, tx, orgID, id, hash2, true) }); err != nil {
		t.Fatal(err)
	}
	if err := lookup(auth.HashToken(tok)); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("the replaced token still finds the invitation: %v", err)
	}
	if err := lookup(auth.HashToken(tok2)); err != nil {
		t.Fatalf("the token minted again finds nothing: %v", err)
	}
}
