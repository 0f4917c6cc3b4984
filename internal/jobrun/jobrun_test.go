package jobrun_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/keelhq/keel/internal/jobrun"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// Track records a run's outcome and detail, returns the job's error, and
// keeps the outcome of a run whose context ended; List filters by job.
func TestTrackAndList(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	if err := jobrun.Track(ctx, db.App, "a", "t-1", func(context.Context) (any, error) {
		return map[string]int{"deleted": 2}, nil
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	cctx, cancel := context.WithCancel(ctx)
	if err := jobrun.Track(cctx, db.App, "b", "t-2", func(context.Context) (any, error) {
		cancel()
		return nil, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Track returned %v, want the job's error", err)
	}
	runs, err := jobrun.Store{}.List(ctx, db.App, "", 10)
	if err != nil || len(runs) != 2 {
		t.Fatalf("List: %+v %v", runs, err)
	}
	byJob := map[string]jobrun.Run{}
	for _, r := range runs {
		byJob[r.Job] = r
	}
	if r := byJob["a"]; r.Status != jobrun.StatusOK || string(r.Detail) != `{"deleted": 2}` || r.Error.Valid || !r.FinishedAt.Valid {
		t.Errorf("ok run: %+v (detail %s)", r, r.Detail)
	}
	if r := byJob["b"]; r.Status != jobrun.StatusFailed || r.Error.String != "boom" || string(r.Detail) != `{}` || !r.FinishedAt.Valid {
		t.Errorf("failed run: %+v (detail %s)", r, r.Detail)
	}
	if runs, err := (jobrun.Store{}).List(ctx, db.App, "b", 10); err != nil || len(runs) != 1 || runs[0].TaskID != "t-2" {
		t.Fatalf("List b: %+v %v", runs, err)
	}
}
