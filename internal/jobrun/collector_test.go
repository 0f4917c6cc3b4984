package jobrun_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/internal/jobrun"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

// The gauges read job_runs at each scrape: the latest ok run's finish time,
// not a later failure's, and 0 for a job that never succeeded; the failure
// gauge the latest failed run's.
func TestCollectorExportsLastSuccessFromJobRuns(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(jobrun.NewCollector(db.App, "keel_backup_last_success_timestamp_seconds", "help", jobrun.StatusOK, "backup:take", "backup:verify"),
		jobrun.NewCollector(db.App, "keel_backup_last_failure_timestamp_seconds", "help", jobrun.StatusFailed, "backup:take", "backup:verify"))
	gatherAll := func(name string) map[string]float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	gather := func() map[string]float64 { return gatherAll("keel_backup_last_success_timestamp_seconds") }
	if got := gather(); len(got) != 2 || got["backup:take"] != 0 || got["backup:verify"] != 0 {
		t.Fatalf("before any run: %v", got)
	}
	ok := func(context.Context) (any, error) { return nil, nil }
	if err := jobrun.Track(ctx, db.App, "backup:take", "t-1", ok); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second) // before the failures below
	if _, err := db.Owner.Exec(`UPDATE job_runs SET started_at = $1::timestamptz - interval '5 seconds', finished_at = $1`, at); err != nil {
		t.Fatal(err)
	}
	_ = jobrun.Track(ctx, db.App, "backup:take", "t-2", func(context.Context) (any, error) { return nil, errors.New("pg_dump failed") })
	_ = jobrun.Track(ctx, db.App, "backup:verify", "t-3", func(context.Context) (any, error) { return nil, errors.New("restore failed") })
	if got := gather(); got["backup:take"] != float64(at.Unix()) || got["backup:verify"] != 0 {
		t.Fatalf("after an ok take and failures: %v, want take at %d", got, at.Unix())
	}
	if got := gatherAll("keel_backup_last_failure_timestamp_seconds"); got["backup:take"] <= float64(at.Unix()) || got["backup:verify"] == 0 {
		t.Fatalf("failure gauges after failed runs: %v", got)
	}
}
