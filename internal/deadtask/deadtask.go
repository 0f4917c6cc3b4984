// Package deadtask keeps tasks that will not run again by themselves (their
// last attempt failed, or they skipped retries) in PostgreSQL, beyond Asynq's
// archive trimming, and replays them through the outbox on an operator's
// request. dead_tasks is a platform table: no tenant is set to read or write
// it.
package deadtask

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/queue"
)

// Errors Replay returns.
var (
	ErrNotFound        = errors.New("dead task not found")
	ErrAlreadyReplayed = errors.New("dead task already replayed")
)

// Task is one dead task.
type Task struct {
	ID           uuid.UUID         `db:"id"`
	TaskID       string            `db:"task_id"`
	Type         string            `db:"task_type"`
	Queue        string            `db:"queue"`
	Payload      []byte            `db:"payload"`
	HeadersJSON  []byte            `db:"headers"`
	Headers      map[string]string `db:"-"`
	OrgID        uuid.NullUUID     `db:"tenant_org_id"`
	LastError    string            `db:"last_error"`
	Retried      int               `db:"retried"`
	MaxRetry     int               `db:"max_retry"`
	DiedAt       time.Time         `db:"died_at"`
	ReplayedAt   sql.NullTime      `db:"replayed_at"`
	ReplayTaskID uuid.NullUUID     `db:"replay_task_id"`
}

// Store runs the dead_tasks queries; its methods take the pool or
// transaction they run on.
type Store struct{}

// Record inserts d, or refreshes the row when the same task died before (it
// was run again from the archive and failed again).
func (Store) Record(ctx context.Context, db sqlx.ExtContext, d queue.DeadTask) error {
	h, err := json.Marshal(d.Headers)
	if err != nil {
		return fmt.Errorf("dead task headers: %w", err)
	}
	if d.Headers == nil {
		h = []byte("{}")
	}
	var org uuid.NullUUID
	if v, err := uuid.Parse(d.Headers[outbox.HeaderOrgID]); err == nil {
		org = uuid.NullUUID{UUID: v, Valid: true}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	const q = `INSERT INTO dead_tasks (id, task_id, task_type, queue, payload, headers, tenant_org_id, last_error, retried, max_retry)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (task_id) DO UPDATE SET last_error = EXCLUDED.last_error, retried = EXCLUDED.retried,
			died_at = now(), replayed_at = NULL, replay_task_id = NULL`
	if _, err := db.ExecContext(ctx, q, id, d.TaskID, d.Type, d.Queue, payload, h, org, d.Error, d.Retried, d.MaxRetry); err != nil {
		return fmt.Errorf("record dead task %s: %w", d.TaskID, err)
	}
	return nil
}

// Known reports which of taskIDs are already recorded.
func (Store) Known(ctx context.Context, db sqlx.QueryerContext, taskIDs []string) (map[string]bool, error) {
	var ids []string
	if err := sqlx.SelectContext(ctx, db, &ids, `SELECT task_id FROM dead_tasks WHERE task_id = ANY($1)`, postgres.Array(taskIDs)); err != nil {
		return nil, fmt.Errorf("dead tasks known: %w", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

const columns = `id, task_id, task_type, queue, payload, headers, tenant_org_id, last_error, retried, max_retry, died_at, replayed_at, replay_task_id`

// List returns the latest dead tasks, newest first; replayed ones only when
// all is set.
func (Store) List(ctx context.Context, db sqlx.QueryerContext, limit int, all bool) ([]Task, error) {
	var out []Task
	if err := sqlx.SelectContext(ctx, db, &out, `SELECT `+columns+` FROM dead_tasks WHERE ($2 OR replayed_at IS NULL) ORDER BY died_at DESC LIMIT $1`, limit, all); err != nil {
		return nil, fmt.Errorf("list dead tasks: %w", err)
	}
	for i := range out {
		if err := out[i].decode(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Lock returns dead task id, locked until tx ends; postgres.ErrNotFound
// when there is none.
func (Store) Lock(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID) (*Task, error) {
	var t Task
	if err := sqlx.GetContext(ctx, tx, &t, `SELECT `+columns+` FROM dead_tasks WHERE id = $1 FOR UPDATE`, id); err != nil {
		return nil, postgres.Translate(err)
	}
	if err := t.decode(); err != nil {
		return nil, err
	}
	return &t, nil
}

// MarkReplayed records that dead task id was enqueued again as task newID.
func (Store) MarkReplayed(ctx context.Context, tx sqlx.ExtContext, id, newID uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `UPDATE dead_tasks SET replayed_at = now(), replay_task_id = $2 WHERE id = $1`, id, newID)
	return err
}

func (t *Task) decode() error {
	if err := json.Unmarshal(t.HeadersJSON, &t.Headers); err != nil {
		return fmt.Errorf("dead task %s headers: %w", t.ID, err)
	}
	return nil
}

// Service records dead tasks on DB (it is the worker's queue.DeadLetter)
// and replays them, each replay in one transaction.
type Service struct {
	DB *sqlx.DB
}

var _ queue.DeadLetter = (*Service)(nil)

// Record implements queue.DeadLetter; see Store.Record.
func (s *Service) Record(ctx context.Context, d queue.DeadTask) error {
	return Store{}.Record(ctx, s.DB, d)
}

// Replay enqueues the dead task id again through the outbox, as a new task
// with a new ID (the old ID may still sit in Asynq's archive, which would
// refuse it), and marks the row replayed. The new task keeps the original
// headers, so it runs for the same organization and request. spec, when
// set, gives the type's current retries and timeout.
func (s *Service) Replay(ctx context.Context, id uuid.UUID, spec func(typ string) (maxRetry int, timeout time.Duration, ok bool)) (uuid.UUID, error) {
	var newID uuid.UUID
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		t, err := Store{}.Lock(ctx, tx, id)
		if errors.Is(err, postgres.ErrNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("load dead task: %w", err)
		}
		if t.ReplayedAt.Valid {
			return fmt.Errorf("%w at %s as task %s", ErrAlreadyReplayed, t.ReplayedAt.Time.UTC().Format(time.RFC3339), t.ReplayTaskID.UUID)
		}
		ot := outbox.Task{Type: t.Type, Payload: t.Payload, Queue: t.Queue, MaxRetry: t.MaxRetry, Headers: t.Headers}
		if spec != nil {
			if mr, to, ok := spec(t.Type); ok {
				ot.MaxRetry, ot.Timeout = mr, to
			}
		}
		newID, err = outbox.Add(ctx, tx, ot)
		if err != nil {
			return err
		}
		return Store{}.MarkReplayed(ctx, tx, id, newID)
	})
	return newID, err
}
