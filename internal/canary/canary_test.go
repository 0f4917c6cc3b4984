package canary_test

import (
	"context"
	"os"
	"testing"

	"github.com/keelhq/keel/internal/canary"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/jobs/task"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// Send commits one ops:canary outbox row per probe; Ran counts the probes
// recorded at least once, and a second run of a probe counts up.
func TestSendRecordRan(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	ids, err := canary.Send(ctx, db.App, 3)
	if err != nil || len(ids) != 3 {
		t.Fatalf("Send: %v %v", ids, err)
	}
	var queued int
	if err := db.Owner.Get(&queued, `SELECT count(*) FROM outbox WHERE task_type = $1 AND id::text = ANY(string_to_array($2, ','))`,
		task.TypeCanary, ids[0]+","+ids[1]+","+ids[2]); err != nil || queued != 3 {
		t.Fatalf("outbox rows: %d (%v)", queued, err)
	}
	for _, id := range []string{ids[0], ids[0], ids[1]} {
		if err := (canary.Store{}).Record(ctx, db.App, id); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := (canary.Store{}).Ran(ctx, db.App, ids); err != nil || n != 2 {
		t.Fatalf("Ran = %d (%v), want 2", n, err)
	}
	var runs int
	if err := db.Owner.Get(&runs, `SELECT runs FROM canary_runs WHERE task_id = $1`, ids[0]); err != nil || runs != 2 {
		t.Fatalf("runs of the probe that ran twice: %d (%v)", runs, err)
	}
}
