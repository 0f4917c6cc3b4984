package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/queuetest"
	"github.com/keelhq/keel/internal/platform/redis"
	"github.com/keelhq/keel/internal/platform/redistest"
)

func TestMain(m *testing.M) {
	// The outage test makes go-redis log every refused dial.
	redistest.QuietClientLogs()
	os.Exit(postgrestest.Main(m))
}

// countingQueue is a real Asynq client that counts, per task ID, how often
// the relay asked to enqueue it and how often Redis accepted.
type countingQueue struct {
	c        *asynq.Client
	mu       sync.Mutex
	calls    map[string]int
	accepted map[string]int
}

func newCountingQueue(c *asynq.Client) *countingQueue {
	return &countingQueue{c: c, calls: map[string]int{}, accepted: map[string]int{}}
}

func (q *countingQueue) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := q.c.EnqueueContext(ctx, t, opts...)
	var id string
	for _, o := range opts {
		if o.Type() == asynq.TaskIDOpt {
			id = o.Value().(string)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls[id]++
	if err == nil {
		q.accepted[id]++
	}
	return info, err
}

func addN(t *testing.T, db *sqlx.DB, n, perTx int) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for len(ids) < n {
		err := postgres.InTx(context.Background(), db, uuid.Nil, func(tx *sqlx.Tx) error {
			for i := 0; i < perTx && len(ids) < n; i++ {
				id, err := outbox.Add(context.Background(), tx, outbox.Task{Type: "test:noop", Payload: []byte(fmt.Sprintf(`{"n":%d}`, len(ids)))})
				if err != nil {
					return err
				}
				ids[id.String()] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func pending(t *testing.T, db *sqlx.DB) int64 {
	t.Helper()
	n, _, err := outbox.Backlog(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAddDefaultsAndHeaders(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	ctx := logging.WithRequestID(context.Background(), "req-12345678")
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	var id1, id2 uuid.UUID
	err := postgres.InTx(ctx, d.App, uuid.Nil, func(tx *sqlx.Tx) error {
		var err error
		if id1, err = outbox.Add(ctx, tx, outbox.Task{Type: "a:b", Payload: []byte("x")}); err != nil {
			return err
		}
		id2, err = outbox.Add(ctx, tx, outbox.Task{Type: "c:d", Queue: "critical", MaxRetry: 3, Timeout: 90 * time.Second,
			ProcessAt: at, Headers: map[string]string{outbox.HeaderOrgID: "org-1", outbox.HeaderRequestID: "explicit-id"}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Queue     string     `db:"queue"`
		MaxRetry  int        `db:"max_retry"`
		TimeoutMS int64      `db:"timeout_ms"`
		ProcessAt *time.Time `db:"process_at"`
		Headers   string     `db:"headers"`
	}
	var r1, r2 row
	const q = `SELECT queue, max_retry, timeout_ms, process_at, headers::text AS headers FROM outbox WHERE id = $1`
	if err := d.Owner.Get(&r1, q, id1); err != nil {
		t.Fatal(err)
	}
	if err := d.Owner.Get(&r2, q, id2); err != nil {
		t.Fatal(err)
	}
	if r1.Queue != "default" || r1.MaxRetry != 25 || r1.TimeoutMS != 0 || r1.ProcessAt != nil || r1.Headers != `{"request_id": "req-12345678"}` {
		t.Errorf("defaults: %+v", r1)
	}
	if r2.Queue != "critical" || r2.MaxRetry != 3 || r2.TimeoutMS != 90000 || r2.ProcessAt == nil || !r2.ProcessAt.Equal(at) ||
		r2.Headers != `{"org_id": "org-1", "request_id": "explicit-id"}` {
		t.Errorf("explicit: %+v", r2)
	}
	if id1.Version() != 7 {
		t.Errorf("ids are UUIDv7 so the relay's created_at order is the insert order; got v%d", id1.Version())
	}

	_, err = outbox.Add(ctx, d.App, outbox.Task{})
	if !errors.Is(err, outbox.ErrInvalidTask) {
		t.Errorf("task without type: %v", err)
	}
}

func TestRolledBackAddEnqueuesNothing(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	rs := redistest.Start(t)
	q := newCountingQueue(queuetest.Client(t, rs))
	boom := errors.New("the business change failed")
	err := postgres.InTx(context.Background(), d.App, uuid.Nil, func(tx *sqlx.Tx) error {
		if _, err := outbox.Add(context.Background(), tx, outbox.Task{Type: "test:noop"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	var rows int
	if err := d.Owner.Get(&rows, `SELECT count(*) FROM outbox`); err != nil || rows != 0 {
		t.Fatalf("outbox rows after rollback = %d, %v", rows, err)
	}
	relay := &outbox.Relay{DB: d.App, Queue: q, Log: zerolog.Nop()}
	if n, err := relay.RunOnce(context.Background()); n != 0 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	if len(q.calls) != 0 {
		t.Fatalf("relay enqueued %v", q.calls)
	}
	if qi := queuetest.QueueInfo(t, queuetest.Inspector(t, rs), "default"); qi.Size != 0 {
		t.Fatalf("queue holds %d tasks", qi.Size)
	}
}

// Several relays (as in several worker replicas) share one outbox: every
// row is enqueued exactly once, and no row is even attempted twice.
func TestConcurrentRelaysMoveEachRowOnce(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	rs := redistest.Start(t)
	q := newCountingQueue(queuetest.Client(t, rs))
	const n = 600
	ids := addN(t, d.App, n, 100)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	dispatched := 0
	for range 4 {
		r := &outbox.Relay{DB: d.App, Queue: q, Log: zerolog.Nop(), Batch: 25, Loops: 3, Idle: 20 * time.Millisecond,
			Dispatched: func(k int) { mu.Lock(); dispatched += k; mu.Unlock() }}
		wg.Add(1)
		go func() { defer wg.Done(); r.Run(ctx) }()
	}
	// More rows arrive while the relays run.
	for id := range addN(t, d.App, 200, 10) {
		ids[id] = true
	}
	queuetest.Eventually(t, 30*time.Second, "outbox drained", func() bool { return pending(t, d.App) == 0 })
	cancel()
	wg.Wait()

	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.calls) != len(ids) {
		t.Errorf("relays attempted %d distinct rows, want %d", len(q.calls), len(ids))
	}
	for id := range ids {
		if q.calls[id] != 1 || q.accepted[id] != 1 {
			t.Errorf("row %s: %d attempts, %d accepted; want 1 and 1", id, q.calls[id], q.accepted[id])
		}
	}
	if dispatched != len(ids) {
		t.Errorf("Dispatched counted %d rows, want %d", dispatched, len(ids))
	}
	if qi := queuetest.QueueInfo(t, queuetest.Inspector(t, rs), "default"); qi.Pending != len(ids) {
		t.Errorf("Redis holds %d pending tasks, want %d", qi.Pending, len(ids))
	}
}

// A relay that enqueued a row but crashed before marking it leaves the row
// pending; the next relay enqueues nothing new, even after the first task
// already ran (its ID is retained).
func TestSecondRelayOfUnmarkedRowEnqueuesNothing(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	rs := redistest.Start(t)
	q := newCountingQueue(queuetest.Client(t, rs))
	insp := queuetest.Inspector(t, rs)
	ids := addN(t, d.App, 3, 3)
	relay := &outbox.Relay{DB: d.App, Queue: q, Log: zerolog.Nop(), Retention: time.Hour}
	crash := func() {
		t.Helper()
		if _, err := d.Owner.Exec(`UPDATE outbox SET dispatched_at = NULL`); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := relay.RunOnce(context.Background()); n != 3 || err != nil {
		t.Fatalf("first relay: %d, %v", n, err)
	}
	crash()
	// Still pending in Redis: the duplicate is refused and the row is marked.
	if n, err := relay.RunOnce(context.Background()); n != 3 || err != nil {
		t.Fatalf("second relay: %d, %v", n, err)
	}
	if qi := queuetest.QueueInfo(t, insp, "default"); qi.Size != 3 || qi.Pending != 3 {
		t.Fatalf("after second relay: %+v", qi)
	}
	if p := pending(t, d.App); p != 0 {
		t.Fatalf("second relay left %d rows pending", p)
	}

	// Now the tasks run and complete; a third relay of the same rows must
	// still enqueue nothing.
	rec := &queuetest.Recorder{}
	queuetest.Serve(t, rs, rec)
	rec.WaitFor(t, 3, 10*time.Second)
	queuetest.Eventually(t, 10*time.Second, "3 completed tasks retained", func() bool {
		return queuetest.QueueInfo(t, insp, "default").Completed == 3
	})
	crash()
	if n, err := relay.RunOnce(context.Background()); n != 3 || err != nil {
		t.Fatalf("third relay: %d, %v", n, err)
	}
	if qi := queuetest.QueueInfo(t, insp, "default"); qi.Pending != 0 || qi.Completed != 3 {
		t.Fatalf("after third relay: %+v", qi)
	}
	for id := range ids {
		if q.accepted[id] != 1 || q.calls[id] != 3 {
			t.Errorf("row %s: %d attempts, %d accepted; want 3 and 1", id, q.calls[id], q.accepted[id])
		}
		info, err := insp.GetTaskInfo("default", id)
		if err != nil || info.State != asynq.TaskStateCompleted || info.Retention != time.Hour {
			t.Errorf("task %s: %+v, %v", id, info, err)
		}
	}
	if c := rec.Counts(); len(c) != 3 {
		t.Errorf("handler ran %v", c)
	}
	for id, k := range rec.Counts() {
		if !ids[id] || k != 1 {
			t.Errorf("task %s ran %d times", id, k)
		}
	}
}

// The acceptance test of the outbox: rows written while Redis is down are
// all delivered, exactly once, after it comes back.
func TestRedisOutageLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	rs := redistest.Start(t)
	q := newCountingQueue(queuetest.Client(t, rs))
	rs.Stop()

	const n = 1000
	ids := addN(t, d.App, n, 50)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		r := &outbox.Relay{DB: d.App, Queue: q, Log: zerolog.Nop(), Batch: 100, Loops: 2, Idle: 50 * time.Millisecond}
		wg.Add(1)
		go func() { defer wg.Done(); r.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	// The relay tries, fails, records why, and keeps every row.
	queuetest.Eventually(t, 10*time.Second, "relay records a failed attempt", func() bool {
		var failed int
		_ = d.Owner.Get(&failed, `SELECT count(*) FROM outbox WHERE attempts > 0 AND last_error IS NOT NULL`)
		return failed > 0
	})
	if p := pending(t, d.App); p != n {
		t.Fatalf("during the outage %d rows are pending, want %d", p, n)
	}

	rs.Restart()
	rec := &queuetest.Recorder{}
	queuetest.Serve(t, rs, rec)
	queuetest.Eventually(t, 30*time.Second, "outbox drained after Redis came back", func() bool { return pending(t, d.App) == 0 })
	counts := rec.WaitFor(t, n, 30*time.Second)

	for id := range ids {
		if counts[id] != 1 {
			t.Errorf("task %s ran %d times", id, counts[id])
		}
	}
	if len(counts) != n {
		t.Errorf("handler saw %d distinct tasks, want %d", len(counts), n)
	}
	q.mu.Lock()
	for id := range ids {
		if q.accepted[id] != 1 {
			t.Errorf("row %s accepted by Redis %d times", id, q.accepted[id])
		}
	}
	q.mu.Unlock()
	insp := queuetest.Inspector(t, rs)
	queuetest.Eventually(t, 10*time.Second, "all 1,000 tasks completed and nothing else queued", func() bool {
		qi := queuetest.QueueInfo(t, insp, "default")
		return qi.Completed == n && qi.Pending+qi.Active+qi.Scheduled+qi.Retry+qi.Archived == 0
	})
}

func TestListenWakesOnCommit(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	wake := outbox.Listen(ctx, d.AppURL, zerolog.Nop())
	// A rolled-back Add notifies nobody.
	_ = postgres.InTx(ctx, d.App, uuid.Nil, func(tx *sqlx.Tx) error {
		if _, err := outbox.Add(ctx, tx, outbox.Task{Type: "test:noop"}); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	select {
	case <-wake:
		t.Fatal("woken by a rolled-back transaction")
	case <-time.After(200 * time.Millisecond):
	}
	addN(t, d.App, 1, 1)
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after a commit")
	}
}

// Listen must not wait for PostgreSQL: the worker calls it at start, before
// it serves health or watches for SIGTERM.
func TestListenDoesNotWaitForTheDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		outbox.Listen(ctx, "postgres://nobody@127.0.0.1:"+strconv.Itoa(redistest.FreePort(t))+"/none?sslmode=disable", zerolog.Nop())
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Listen blocks while the database is unreachable")
	}
	cancel()
}

func TestBacklog(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	if n, age, err := outbox.Backlog(context.Background(), d.App); n != 0 || age != 0 || err != nil {
		t.Fatalf("empty: %d %s %v", n, age, err)
	}
	addN(t, d.App, 3, 3)
	if _, err := d.Owner.Exec(`UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE id = (SELECT id FROM outbox ORDER BY id LIMIT 1)`); err != nil {
		t.Fatal(err)
	}
	n, age, err := outbox.Backlog(context.Background(), d.App)
	if n != 3 || age < 89*time.Second || age > 10*time.Minute || err != nil {
		t.Fatalf("Backlog = %d, %s, %v", n, age, err)
	}
	// Of the three pending rows, only the one 90 seconds old is stale after
	// a minute; none is after two.
	for older, want := range map[time.Duration]int64{time.Minute: 1, 2 * time.Minute: 0} {
		if n, err := outbox.Stale(context.Background(), d.App, older); n != want || err != nil {
			t.Errorf("Stale(%s) = %d, %v; want %d", older, n, err, want)
		}
	}
}

// With a replica fence the relay marks a row delivered only once replicas
// hold its task. A lone server has no replica: the rows stay pending (their
// tasks queued all the same) with the fence's reason as last error. A task
// the promoted replica never received (deleted here, as a failover loses
// it) is enqueued again on the next pass, and only then is every row
// marked.
func TestReplicaFenceHoldsRowsUntilTasksAreReplicated(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	rs := redistest.Start(t)
	q := newCountingQueue(queuetest.Client(t, rs))
	insp := queuetest.Inspector(t, rs)
	ids := addN(t, d.App, 20, 20)
	conn, err := redis.ParseURL(rs.URL)
	if err != nil {
		t.Fatal(err)
	}
	noReplica := redis.NewReplicaFence(conn, 1, 50*time.Millisecond)
	defer noReplica.Close()
	ctx := context.Background()

	relay := &outbox.Relay{DB: d.App, Queue: q, Log: zerolog.Nop(), Confirm: noReplica}
	n, err := relay.RunOnce(ctx)
	if n != 0 || err == nil || !strings.Contains(err.Error(), "0 of 1 replica(s) acknowledged") {
		t.Fatalf("RunOnce without a replica = %d, %v", n, err)
	}
	if p := pending(t, d.App); p != 20 {
		t.Fatalf("%d rows pending after an unconfirmed pass, want 20", p)
	}
	if got := countRows(t, d.Owner, `SELECT count(*) FROM outbox WHERE last_error LIKE '%replica(s) acknowledged%' AND attempts = 1`); got != 20 {
		t.Fatalf("%d rows record the fence's reason, want 20", got)
	}
	if qi := queuetest.QueueInfo(t, insp, "default"); qi.Pending != 20 {
		t.Fatalf("Redis holds %d tasks, want 20 (enqueued, only not confirmed)", qi.Pending)
	}

	var lost string
	for id := range ids {
		lost = id
		break
	}
	if err := insp.DeleteTask("default", lost); err != nil {
		t.Fatal(err)
	}
	present := redis.NewReplicaFence(conn, 0, 50*time.Millisecond)
	defer present.Close()
	relay.Confirm = present
	if n, err := relay.RunOnce(ctx); n != 20 || err != nil {
		t.Fatalf("second pass = %d, %v; want 20 rows marked", n, err)
	}
	if p := pending(t, d.App); p != 0 {
		t.Fatalf("%d rows still pending", p)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for id := range ids {
		want := 1
		if id == lost {
			want = 2
		}
		if q.calls[id] != 2 || q.accepted[id] != want {
			t.Errorf("row %s: %d attempts, %d accepted; want 2 and %d", id, q.calls[id], q.accepted[id], want)
		}
	}
}

// A fence that sees a task missing on the master it asks refuses the batch,
// whatever the replicas say: the master that took the enqueue is gone.
func TestReplicaFenceRefusesMissingTasks(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	conn, err := redis.ParseURL(rs.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := redis.NewReplicaFence(conn, 0, 50*time.Millisecond)
	defer f.Close()
	c := rs.Client()
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "asynq:{default}:t:a", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.Confirm(ctx, []string{"asynq:{default}:t:a"}); err != nil {
		t.Fatalf("present key: %v", err)
	}
	err = f.Confirm(ctx, []string{"asynq:{default}:t:a", "asynq:{default}:t:b"})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 task(s) are missing") {
		t.Fatalf("missing key: %v", err)
	}
	rs.Stop()
	if err := f.Confirm(ctx, nil); err == nil {
		t.Fatal("a fence with Redis down passed")
	}
}

func countRows(t *testing.T, db *sqlx.DB, q string) int {
	t.Helper()
	var n int
	if err := db.Get(&n, q); err != nil {
		t.Fatal(err)
	}
	return n
}

type refuse struct{}

func (refuse) Confirm(context.Context, []string) error { return errors.New("no replica") }

// A batch its replicas never confirm goes back behind rows not tried yet:
// new rows are still enqueued (their tasks run) while replicas are missing.
func TestUnconfirmedBatchDoesNotHoldNewRowsBack(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	rs := redistest.Start(t)
	q := newCountingQueue(queuetest.Client(t, rs))
	old := addN(t, d.App, 10, 10)
	relay := &outbox.Relay{DB: d.App, Queue: q, Log: zerolog.Nop(), Batch: 10, Confirm: refuse{}}
	ctx := context.Background()
	if _, err := relay.RunOnce(ctx); err == nil {
		t.Fatal("an unconfirmed pass reported no error")
	}
	fresh := addN(t, d.App, 10, 10)
	if _, err := relay.RunOnce(ctx); err == nil {
		t.Fatal("an unconfirmed pass reported no error")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for id := range fresh {
		if q.calls[id] != 1 {
			t.Errorf("new row %s enqueued %d times, want 1", id, q.calls[id])
		}
	}
	for id := range old {
		if q.calls[id] != 1 {
			t.Errorf("put-back row %s enqueued %d times, want 1 (it should wait behind the new rows)", id, q.calls[id])
		}
	}
}
