// Package jobrun records what periodic jobs did (backup verification,
// purges) in job_runs, for operators and, later, the admin area.
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

// Store reads and writes job_runs.
type Store struct {
	DB *sqlx.DB
}

// Track records a run of job (as task taskID) around fn: a "running" row
// first, so a run that crashes the worker is visible, then the outcome with
// fn's detail and error. It returns fn's error, or the recording's.
func (s *Store) Track(ctx context.Context, job, taskID string, fn func(ctx context.Context) (detail any, err error)) error {
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	if _, err := s.DB.ExecContext(ctx, `INSERT INTO job_runs (id, job, task_id, status) VALUES ($1, $2, $3, 'running')`, id, job, taskID); err != nil {
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
	if _, err := s.DB.ExecContext(wctx, `UPDATE job_runs SET status = $2, detail = $3, error = $4, finished_at = now() WHERE id = $1`,
		id, status, b, msg); err != nil && runErr == nil {
		return fmt.Errorf("record %s outcome: %w", job, err)
	}
	return runErr
}

// List returns the latest runs, newest first, of job (every job when empty).
func (s *Store) List(ctx context.Context, job string, limit int) ([]Run, error) {
	var out []Run
	err := s.DB.SelectContext(ctx, &out, `SELECT id, job, task_id, status, detail, error, started_at, finished_at
		FROM job_runs WHERE ($1 = '' OR job = $1) ORDER BY started_at DESC LIMIT $2`, job, limit)
	if err != nil {
		return nil, fmt.Errorf("list job runs: %w", err)
	}
	return out, nil
}
