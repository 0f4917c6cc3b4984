// Package outbox is Keel's transactional outbox: code that must start a job
// adds a row in the same transaction as its change, and the Relay (in the
// worker) enqueues each row to Asynq with the row's ID as the task ID. A
// crash anywhere loses nothing (the row stays until it is marked) and a
// second relay of a row enqueues nothing (Asynq refuses the ID while the task
// is retained).
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/logging"
)

// Header names carried from the writer of a row to the task's handler.
const (
	HeaderRequestID = "request_id"
	HeaderOrgID     = "org_id"
	HeaderActorID   = "actor_id"
)

// Task is a job to enqueue once the caller's transaction commits.
type Task struct {
	Type     string
	Payload  []byte
	Queue    string        // default "default"
	MaxRetry int           // default 25 (Asynq's)
	Timeout  time.Duration // 0: Asynq's default
	// Unique, when positive, makes Asynq refuse another task of the same
	// type, payload and queue for this long (or until this one finishes).
	Unique time.Duration
	// ProcessAt delays the task; zero runs it at once.
	ProcessAt time.Time
	// Headers travel with the task; Add fills request_id from ctx.
	Headers map[string]string
}

// ErrInvalidTask is returned by Add for a task without a type.
var ErrInvalidTask = errors.New("outbox: task has no type")

// Add inserts t into the outbox inside tx and returns the row's ID, which
// becomes the Asynq task ID. The row is visible to the relay only once tx
// commits, so a rolled-back change starts no job.
func Add(ctx context.Context, tx sqlx.ExtContext, t Task) (uuid.UUID, error) {
	r, err := Prepare(ctx, t)
	if err != nil {
		return uuid.Nil, err
	}
	q := `INSERT INTO outbox (` + Columns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	if _, err := tx.ExecContext(ctx, q, r.Values...); err != nil {
		return uuid.Nil, fmt.Errorf("outbox add %s: %w", t.Type, err)
	}
	// Wakes relays at commit; NOTIFY inside a transaction is delivered only then.
	if _, err := tx.ExecContext(ctx, Notify); err != nil {
		return uuid.Nil, fmt.Errorf("outbox notify: %w", err)
	}
	return r.ID, nil
}

// Columns are the outbox columns a Row's Values fill, in order.
const Columns = `id, task_type, payload, headers, queue, max_retry, timeout_ms, process_at, unique_ttl_ms`

// Notify wakes the relays when the transaction that runs it commits.
const Notify = `SELECT pg_notify('keel_outbox', '')`

// Row is an outbox row ready to insert: for a caller that writes it in a
// statement of its own (one that inserts it only under a condition, in the
// same round trip), with Columns and then Notify.
type Row struct {
	ID     uuid.UUID
	Values []any
}

// Prepare builds t's outbox row: defaults filled, the request ID of ctx in
// its headers, a new time-ordered ID.
func Prepare(ctx context.Context, t Task) (Row, error) {
	if t.Type == "" {
		return Row{}, ErrInvalidTask
	}
	if t.Queue == "" {
		t.Queue = "default"
	}
	if t.MaxRetry == 0 {
		t.MaxRetry = 25
	}
	if t.Payload == nil {
		t.Payload = []byte{} // a task may carry nothing; the column is NOT NULL
	}
	h := map[string]string{}
	for k, v := range t.Headers {
		h[k] = v
	}
	if rid := logging.RequestID(ctx); rid != "" && h[HeaderRequestID] == "" {
		h[HeaderRequestID] = rid
	}
	headers, err := json.Marshal(h)
	if err != nil {
		return Row{}, fmt.Errorf("outbox headers: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Row{}, err
	}
	var processAt *time.Time
	if !t.ProcessAt.IsZero() {
		processAt = &t.ProcessAt
	}
	return Row{ID: id, Values: []any{id, t.Type, t.Payload, string(headers), t.Queue, t.MaxRetry, t.Timeout.Milliseconds(),
		processAt, t.Unique.Milliseconds()}}, nil
}

// Backlog reports how many rows wait and how old the oldest is.
func Backlog(ctx context.Context, db sqlx.QueryerContext) (n int64, oldest time.Duration, err error) {
	var age float64
	err = db.QueryRowxContext(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)
		FROM outbox WHERE dispatched_at IS NULL`).Scan(&n, &age)
	return n, time.Duration(age * float64(time.Second)), err
}

// Stale counts the rows that have waited for a relay for longer than age.
func Stale(ctx context.Context, db sqlx.QueryerContext, age time.Duration) (int64, error) {
	var n int64
	err := sqlx.GetContext(ctx, db, &n, `SELECT count(*) FROM outbox
		WHERE dispatched_at IS NULL AND created_at < now() - make_interval(secs => $1)`, age.Seconds())
	return n, err
}
