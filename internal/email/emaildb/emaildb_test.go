package emaildb_test

import (
	"context"
	"os"
	"testing"

	"github.com/keelhq/keel/internal/email/emaildb"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// A send is claimed first once; until MarkSent every later claim is Again
// (the outcome of the earlier exchange is unknown), after it Sent. Claims
// never change who the row is for.
func TestClaimSendUntilMarkedSent(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	for i, want := range []emaildb.Claim{emaildb.First, emaildb.Again, emaildb.Again} {
		got, err := emaildb.ClaimSend(ctx, db.App, "t-1", "ada@example.com", "welcome")
		if err != nil || got != want {
			t.Fatalf("claim %d: %v (%v), want %v", i+1, got, err, want)
		}
	}
	if err := emaildb.MarkSent(ctx, db.App, "t-1"); err != nil {
		t.Fatal(err)
	}
	if got, err := emaildb.ClaimSend(ctx, db.App, "t-1", "eve@example.com", "welcome"); err != nil || got != emaildb.Sent {
		t.Fatalf("claim after MarkSent: %v (%v), want Sent", got, err)
	}
	if got, err := emaildb.ClaimSend(ctx, db.App, "t-2", "bob@example.com", "welcome"); err != nil || got != emaildb.First {
		t.Fatalf("another task: %v (%v)", got, err)
	}
	var row struct {
		Recipient string `db:"recipient"`
		Attempts  int    `db:"attempts"`
		Sent      bool   `db:"sent"`
	}
	if err := db.Owner.Get(&row, `SELECT recipient, attempts, sent_at IS NOT NULL AS sent FROM sent_emails WHERE task_id = 't-1'`); err != nil {
		t.Fatal(err)
	}
	if row.Recipient != "ada@example.com" || row.Attempts != 3 || !row.Sent {
		t.Fatalf("t-1 row = %+v, want ada@example.com, 3 attempts, sent", row)
	}
}
