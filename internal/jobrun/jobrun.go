// Package jobrun records what periodic jobs did (backup verification,
// purges) in job_runs, for operators and, later, the admin area. job_runs
// is a platform table: no tenant is set to read or write it.
package jobrun

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
)

// Statuses of a run.
const (
	StatusRunning = "running"
	StatusOK      = "ok"
	StatusFailed  = "failed"
)

// Run is one recorded run.
type Run struct {
	ID         uuid.UUID       `db:"id"`
	Job        string          `db:"job"`
	TaskID     string          `db:"task_id"`
	Status     string          `db:"status"`
	Detail     json.RawMessage `db:"detail"`
	Error      sql.NullString  `db:"error"`
	StartedAt  time.Time       `db:"started_at"`
	FinishedAt sql.NullTime    `db:"finished_at"`
}

// Store runs the job_runs queries; its methods take the pool or transaction
// they run on.
type Store struct{}

// Start inserts a "running" row for job (as task taskID) and returns its ID.
func (Store) Start(ctx context.Context, db sqlx.ExtContext, job, taskID string) (uuid.UUID, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, err
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO job_runs (id, job, task_id, status) VALUES ($1, $2, $3, 'running')`, id, job, taskID); err != nil {
		return uuid.Nil, err
	}
	return id, nil
}

// Finish records run id's outcome: status, detail (a JSON document) and,
// for a failed run, the error's text.
func (Store) Finish(ctx context.Context, db sqlx.ExtContext, id uuid.UUID, status string, detail []byte, errText sql.NullString) error {
	_, err := db.ExecContext(ctx, `UPDATE job_runs SET status = $2, detail = $3, error = $4, finished_at = now() WHERE id = $1`,
		id, status, detail, errText)
	return err
}

// List returns the latest runs, newest first, of job (every job when empty).
func (Store) List(ctx context.Context, db sqlx.QueryerContext, job string, limit int) ([]Run, error) {
	var out []Run
	err := sqlx.SelectContext(ctx, db, &out, `SELECT id, job, task_id, status, detail, error, started_at, finished_at
		FROM job_runs WHERE ($1 = '' OR job = $1) ORDER BY started_at DESC LIMIT $2`, job, limit)
	if err != nil {
		return nil, fmt.Errorf("list job runs: %w", err)
	}
	return out, nil
}

// Track records a run of job (as task taskID) around fn on the pool db: a
// "running" row first, committed on its own so a run that crashes the
// worker is visible, then the outcome with fn's detail and error. It
// returns fn's error, or the recording's.
func Track(ctx context.Context, db *sqlx.DB, job, taskID string, fn func(ctx context.Context) (detail any, err error)) error {
	id, err := Store{}.Start(ctx, db, job, taskID)
	if err != nil {
		return fmt.Errorf("record %s start: %w", job, err)
	}
	detail, runErr := fn(ctx)
	status, msg := StatusOK, sql.NullString{}
	if runErr != nil {
		status, msg = StatusFailed, sql.NullString{String: runErr.Error(), Valid: true}
	}
	b, err := json.Marshal(detail)
	if err != nil || detail == nil {
		b = []byte("{}")
	}
	// The task's context may have ended (timeout); the outcome is still worth keeping.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := (Store{}).Finish(wctx, db, id, status, b, msg); err != nil && runErr == nil {
		return fmt.Errorf("record %s outcome: %w", job, err)
	}
	return runErr
}
