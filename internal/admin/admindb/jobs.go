package admindb

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/jobrun"
)

// LatestRuns implements admin.JobStore: one row per job, its newest run
// (job_runs_job_started_idx).
func (Store) LatestRuns(ctx context.Context, tx sqlx.QueryerContext) ([]jobrun.Run, error) {
	const q = `SELECT DISTINCT ON (job) id, job, task_id, status, detail, error, started_at, finished_at
		FROM job_runs ORDER BY job, started_at DESC, id DESC`
	var out []jobrun.Run
	if err := sqlx.SelectContext(ctx, tx, &out, q); err != nil {
		return nil, fmt.Errorf("latest job runs: %w", err)
	}
	return out, nil
}

// RecentRuns implements admin.JobStore with jobrun's own listing.
func (Store) RecentRuns(ctx context.Context, tx sqlx.QueryerContext, limit int) ([]jobrun.Run, error) {
	return jobrun.Store{}.List(ctx, tx, "", limit)
}

// DeadTasks implements admin.JobStore with deadtask's own listing (the
// admin role may read every dead_tasks column).
func (Store) DeadTasks(ctx context.Context, tx sqlx.QueryerContext, limit int) ([]deadtask.Task, error) {
	return deadtask.Store{}.List(ctx, tx, limit, false)
}
