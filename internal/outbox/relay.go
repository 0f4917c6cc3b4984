package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// Enqueuer is the part of *asynq.Client the relay uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Relay moves committed outbox rows to Asynq. Any number of relays, in one
// process or many, may run at once: each claims its rows with
// FOR UPDATE SKIP LOCKED, so no two enqueue the same row at the same time.
type Relay struct {
	DB    *sqlx.DB
	Queue Enqueuer
	Log   zerolog.Logger
	Batch int // rows claimed per transaction
	Loops int // concurrent claim loops in this process
	// InFlight bounds the enqueues one batch has open at once.
	InFlight int
	Idle     time.Duration // poll interval when nothing is pending and no NOTIFY came
	// Retention keeps a finished task's ID in Redis so a late second relay of
	// the same row is still refused; handlers stay idempotent for later ones.
	Retention time.Duration
	// Wake, when set, delivers a value whenever a writer committed rows.
	Wake <-chan struct{}
	// Dispatched, when set, is told how many rows each pass moved; for metrics.
	Dispatched func(n int)
	// Confirm, when set, must vouch for a batch's tasks before its rows are
	// marked delivered; rows it does not vouch for go back to pending and
	// the next pass enqueues them again (a no-op for a task still in Redis).
	Confirm Confirmer
}

// Confirmer tells whether tasks Redis acknowledged will outlive a failover
// of the Redis master (*redis.ReplicaFence).
type Confirmer interface {
	// Confirm returns nil when every key (an Asynq task key) is held by
	// enough replicas; otherwise an error saying why not.
	Confirm(ctx context.Context, keys []string) error
}

// taskKey is where Asynq keeps a task, by its queue and ID.
func taskKey(queue, id string) string { return "asynq:{" + queue + "}:t:" + id }

func (r *Relay) defaults() {
	if r.Batch <= 0 {
		r.Batch = 500
	}
	if r.Loops <= 0 {
		r.Loops = 2
	}
	if r.InFlight <= 0 {
		r.InFlight = 64
	}
	if r.Idle <= 0 {
		r.Idle = 500 * time.Millisecond
	}
	if r.Retention <= 0 {
		r.Retention = 24 * time.Hour
	}
}

type row struct {
	ID        string     `db:"id"`
	Type      string     `db:"task_type"`
	Payload   []byte     `db:"payload"`
	Headers   []byte     `db:"headers"`
	Queue     string     `db:"queue"`
	MaxRetry  int        `db:"max_retry"`
	TimeoutMS int64      `db:"timeout_ms"`
	ProcessAt *time.Time `db:"process_at"`
	UniqueMS  int64      `db:"unique_ttl_ms"`
}

// RunOnce claims one batch, enqueues it and marks what was enqueued. It
// returns how many rows it dispatched. When Redis fails it records the error
// on the rows it could not move and returns the error; those rows stay
// pending for the next pass.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	r.defaults()
	tx, err := r.DB.BeginTxx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("relay begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	// Losing this commit in a database crash only means the rows are relayed
	// again, which Asynq refuses by task ID; so it need not wait for fsync.
	if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
		return 0, fmt.Errorf("relay begin: %w", err)
	}
	// Rows whose enqueue fails are put back below, in the same transaction.
	rows, err := claim(ctx, tx, r.Batch)
	if err != nil {
		return 0, fmt.Errorf("relay claim: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	done := make([]string, 0, len(rows))
	keys := make([]string, 0, len(rows))
	var failed []string
	var firstErr error
	var mu sync.Mutex
	// Enqueue concurrently: each Enqueue is a Redis round trip, and a batch
	// moved one at a time would cap the relay at one round trip per row.
	sem := make(chan struct{}, r.InFlight)
	var wg sync.WaitGroup
	for i := range rows {
		wg.Add(1)
		sem <- struct{}{}
		go func(rw *row) {
			defer wg.Done()
			defer func() { <-sem }()
			held, err := r.enqueue(ctx, rw)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, rw.ID)
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			done = append(done, rw.ID)
			if held {
				keys = append(keys, taskKey(rw.Queue, rw.ID))
			}
		}(&rows[i])
	}
	wg.Wait()
	if r.Confirm != nil && len(done) > 0 {
		if err := r.Confirm.Confirm(ctx, keys); err != nil {
			failed, done = append(failed, done...), done[:0]
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if len(failed) > 0 {
		if err := putBack(ctx, tx, failed, firstErr.Error()); err != nil {
			return 0, fmt.Errorf("relay record failure: %w", err)
		}
	}
	// A crash before this commit leaves the rows pending: the next pass
	// re-enqueues them and Asynq refuses the duplicate IDs.
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("relay commit: %w", err)
	}
	if r.Dispatched != nil {
		r.Dispatched(len(done))
	}
	if firstErr != nil {
		return len(done), fmt.Errorf("relay enqueue: %w", firstErr)
	}
	return len(done), nil
}

// claim marks up to n pending rows dispatched, fewest attempts first, then
// oldest, and returns them: a batch put back again and again (no replica
// acknowledges) goes behind untried rows instead of holding them back.
// Claim and mark are one statement, so each row is written once per pass;
// SKIP LOCKED leaves rows another relay holds to that relay.
func claim(ctx context.Context, tx sqlx.QueryerContext, n int) ([]row, error) {
	var rows []row
	err := sqlx.SelectContext(ctx, tx, &rows, `UPDATE outbox SET dispatched_at = now()
		WHERE id IN (SELECT id FROM outbox WHERE dispatched_at IS NULL
			ORDER BY attempts, created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING id, task_type, payload, headers, queue, max_retry, timeout_ms, process_at, unique_ttl_ms`, n)
	return rows, err
}

// putBack returns claimed rows ids to pending, counting the attempt and
// keeping reason as their last error.
func putBack(ctx context.Context, tx sqlx.ExtContext, ids []string, reason string) error {
	_, err := tx.ExecContext(ctx, `UPDATE outbox SET dispatched_at = NULL, attempts = attempts + 1, last_error = $2
		WHERE id = ANY($1::uuid[])`, postgres.Array(ids), reason)
	return err
}

// enqueue hands rw to Asynq. held reports that Redis now holds a task under
// rw's ID; it is false for a row a Unique lock turned away, whose ID Redis
// never stored.
func (r *Relay) enqueue(ctx context.Context, rw *row) (held bool, err error) {
	var headers map[string]string
	if len(rw.Headers) > 2 { // "{}" carries nothing
		if err := json.Unmarshal(rw.Headers, &headers); err != nil {
			return false, fmt.Errorf("row %s headers: %w", rw.ID, err)
		}
	}
	opts := []asynq.Option{asynq.TaskID(rw.ID), asynq.Queue(rw.Queue), asynq.MaxRetry(rw.MaxRetry), asynq.Retention(r.Retention)}
	if rw.TimeoutMS > 0 {
		opts = append(opts, asynq.Timeout(time.Duration(rw.TimeoutMS)*time.Millisecond))
	}
	if rw.ProcessAt != nil {
		opts = append(opts, asynq.ProcessAt(*rw.ProcessAt))
	}
	if rw.UniqueMS > 0 {
		opts = append(opts, asynq.Unique(time.Duration(rw.UniqueMS)*time.Millisecond))
	}
	_, err = r.Queue.EnqueueContext(ctx, asynq.NewTaskWithHeaders(rw.Type, rw.Payload, headers), opts...)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		// Already enqueued by an earlier pass that crashed before marking,
		// or whose replicas had not acknowledged it.
		return true, nil
	case errors.Is(err, asynq.ErrDuplicateTask):
		return false, nil
	}
	return err == nil, err
}

// Run relays until ctx ends, with Loops claim loops. A loop that moved a full
// batch goes again at once; otherwise it waits for a NOTIFY or Idle. Redis
// failures back off up to 5 s so an outage does not spin.
func (r *Relay) Run(ctx context.Context) {
	r.defaults()
	wake := make(chan struct{}, r.Loops)
	if r.Wake != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-r.Wake:
					for i := 0; i < r.Loops; i++ {
						select {
						case wake <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for i := 0; i < r.Loops; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx, wake)
		}()
	}
	wg.Wait()
}

func (r *Relay) loop(ctx context.Context, wake <-chan struct{}) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		n, err := r.RunOnce(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			r.Log.Warn().Err(err).Dur("retry_in", backoff).Msg("outbox relay failed")
			sleep(ctx, backoff, nil)
		case n == r.Batch:
			backoff = 0
		default:
			backoff = 0
			sleep(ctx, r.Idle, wake)
		}
	}
}

func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// Listen returns a channel that receives a value whenever an outbox row is
// committed, using PostgreSQL LISTEN on its own connection; it closes the
// listener when ctx ends. It never blocks: the listener's Listen waits for
// the first connection, so it runs in the background and a worker started
// before PostgreSQL still serves health and stops on SIGTERM. The relay still
// polls, so a lost notification only delays a row by the idle interval; a
// reconnect, after which notifications may have been missed, wakes it too.
func Listen(ctx context.Context, dbURL string, log zerolog.Logger) <-chan struct{} {
	l := postgres.NewListener(dbURL, 100*time.Millisecond, 5*time.Second, func(err error) {
		log.Debug().Err(err).Msg("outbox listener")
	})
	out := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		_ = l.Close() // also releases a Listen still waiting for its first connection
	}()
	go func() {
		if err := l.Listen("keel_outbox"); err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("outbox LISTEN unavailable; relay polls only")
			}
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-l.Notify():
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}
