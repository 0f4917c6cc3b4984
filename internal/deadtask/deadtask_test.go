package deadtask_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/queue"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// A task that dies twice is one row with the latest error; a replay enqueues
// it once, with the spec's retries and the original headers, and hides it
// from the default listing.
func TestRecordListReplay(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	d := queue.DeadTask{TaskID: "t-1", Type: "email:send", Queue: "critical", Payload: []byte(`{}`),
		Headers: map[string]string{"org_id": "00000000-0000-0000-0000-0000000000aa"}, Error: "first", Retried: 3, MaxRetry: 3}
	svc := &deadtask.Service{DB: db.App}
	if err := svc.Record(ctx, d); err != nil {
		t.Fatal(err)
	}
	d.Error = "second"
	if err := (deadtask.Store{}).Record(ctx, db.App, d); err != nil {
		t.Fatal(err)
	}
	known, err := deadtask.Store{}.Known(ctx, db.App, []string{"t-1", "t-2"})
	if err != nil || !known["t-1"] || known["t-2"] {
		t.Fatalf("Known: %v %v", known, err)
	}
	list, err := deadtask.Store{}.List(ctx, db.App, 10, false)
	if err != nil || len(list) != 1 || list[0].LastError != "second" || list[0].Headers["org_id"] != d.Headers["org_id"] ||
		!list[0].OrgID.Valid || list[0].OrgID.UUID.String() != d.Headers["org_id"] {
		t.Fatalf("List: %+v %v", list, err)
	}

	if _, err := svc.Replay(ctx, uuid.New(), nil); !errors.Is(err, deadtask.ErrNotFound) {
		t.Fatalf("Replay of an unknown ID: %v", err)
	}
	newID, err := svc.Replay(ctx, list[0].ID, func(string) (int, time.Duration, bool) { return 7, time.Minute, true })
	if err != nil {
		t.Fatal(err)
	}
	var row struct {
		MaxRetry  int    `db:"max_retry"`
		TimeoutMS int64  `db:"timeout_ms"`
		Org       string `db:"org"`
	}
	if err := db.Owner.Get(&row, `SELECT max_retry, timeout_ms, headers->>'org_id' AS org FROM outbox WHERE id = $1`, newID); err != nil ||
		row.MaxRetry != 7 || row.TimeoutMS != 60000 || row.Org != d.Headers["org_id"] {
		t.Fatalf("outbox row: %+v %v", row, err)
	}
	if _, err := svc.Replay(ctx, list[0].ID, nil); !errors.Is(err, deadtask.ErrAlreadyReplayed) {
		t.Fatalf("second Replay: %v", err)
	}
	if list, err := (deadtask.Store{}).List(ctx, db.App, 10, false); err != nil || len(list) != 0 {
		t.Fatalf("List after replay: %+v %v", list, err)
	}
	if list, err := (deadtask.Store{}).List(ctx, db.App, 10, true); err != nil || len(list) != 1 || list[0].ReplayTaskID.UUID != newID {
		t.Fatalf("List -all after replay: %+v %v", list, err)
	}
}
