package emaildb_test

import (
	"context"
	"os"
	"testing"

	"github.com/keelhq/keel/internal/email/emaildb"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// The first record of a task ID is first; a later one, whatever it says,
// is not and changes nothing.
func TestRecordSendOncePerTask(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	for i, want := range []bool{true, false} {
		first, err := emaildb.RecordSend(ctx, db.App, "t-1", "ada@example.com", "welcome")
		if err != nil || first != want {
			t.Fatalf("record %d: first = %v (%v), want %v", i+1, first, err, want)
		}
	}
	if first, err := emaildb.RecordSend(ctx, db.App, "t-2", "bob@example.com", "welcome"); err != nil || !first {
		t.Fatalf("another task: first = %v (%v)", first, err)
	}
	var recipient string
	if err := db.Owner.Get(&recipient, `SELECT recipient FROM sent_emails WHERE task_id = 't-1'`); err != nil || recipient != "ada@example.com" {
		t.Fatalf("t-1 recorded for %q (%v)", recipient, err)
	}
}
