// Package canary is the fleet's end-to-end probe, ops:canary (see
// jobs/task): probes are committed to the outbox as a request would add a
// task, relayed to Redis, run by a worker, and recorded in canary_runs by
// task ID, so an operator (or a chaos test) can prove that every task ran,
// and how often. canary_runs is a platform table: no tenant is set.
package canary

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/jobs/task"
)

// Store runs the canary_runs queries; its methods take the pool or
// transaction they run on.
type Store struct{}

// Record counts one run of task taskID: the first run inserts its row, a
// later run of the same task counts up.
func (Store) Record(ctx context.Context, db sqlx.ExtContext, taskID string) error {
	_, err := db.ExecContext(ctx, `INSERT INTO canary_runs (task_id) VALUES ($1)
		ON CONFLICT (task_id) DO UPDATE SET runs = canary_runs.runs + 1, last_run_at = now()`, taskID)
	if err != nil {
		return fmt.Errorf("record canary: %w", err)
	}
	return nil
}

// Ran reports how many of taskIDs have run at least once.
func (Store) Ran(ctx context.Context, db sqlx.QueryerContext, taskIDs []string) (int, error) {
	var n int
	if err := sqlx.GetContext(ctx, db, &n, `SELECT count(*) FROM canary_runs WHERE task_id = ANY($1)`, postgres.Array(taskIDs)); err != nil {
		return 0, fmt.Errorf("count canary runs: %w", err)
	}
	return n, nil
}

// Send commits n probes (ops:canary tasks that do no work) to the outbox in
// one transaction on db and returns their task IDs.
func Send(ctx context.Context, db *sqlx.DB, n int) ([]string, error) {
	probe, err := task.NewCanaryTask(task.CanaryPayload{})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, n)
	err = postgres.InTx(ctx, db, uuid.Nil, func(tx *sqlx.Tx) error {
		for i := 0; i < n; i++ {
			id, err := outbox.Add(ctx, tx, probe)
			if err != nil {
				return err
			}
			ids = append(ids, id.String())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}
