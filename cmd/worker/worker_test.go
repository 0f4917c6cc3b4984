package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/workertest"
	"github.com/keelhq/keel/jobs/task"
)

func TestMain(m *testing.M) {
	code := postgrestest.Main(m)
	workertest.RemoveBinaries()
	os.Exit(code)
}

func workerEnv(db *postgrestest.DB, r *redistest.Server, extra ...string) []string {
	return append([]string{
		"DATABASE_URL=" + db.AppURL, "REDIS_URL=" + r.URL,
		"WORKER_CONCURRENCY=8", "OUTBOX_RELAY_INTERVAL=50ms", "SHUTDOWN_TIMEOUT=3s",
		"WORKER_RETRY_BASE=200ms", "WORKER_RETRY_MAX=2s",
	}, extra...)
}

func canaries(t *testing.T, n, sleepMS int) []outbox.Task {
	t.Helper()
	out := make([]outbox.Task, n)
	for i := range out {
		c, err := task.NewCanaryTask(task.CanaryPayload{SleepMS: sleepMS})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = c
	}
	return out
}

// Chaos: 2,000 tasks, the worker killed with SIGKILL three times while they
// run. Asynq gives back what a dead worker held once its lease expires, so
// at the end every task has run and each left exactly one row.
func TestChaosKillWorkerThreeTimes(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "worker")
	db := postgrestest.New(t)
	r := redistest.StartPersistent(t)
	const total = 2000
	ids := workertest.AddTasks(t, db.App, canaries(t, total, 25), 200)

	done := func() int { return workertest.Count(t, db.Owner, `SELECT count(*) FROM canary_runs`) }
	w := workertest.Start(t, bin, workerEnv(db, r)...)
	for kill, at := range []int{300, 800, 1300} {
		workertest.WaitFor(t, time.Minute, fmt.Sprintf("%d rows before kill %d", at, kill+1), func() (bool, string) {
			n := done()
			return n >= at, fmt.Sprint(n)
		})
		w.Kill()
		t.Logf("kill -9 #%d at %d rows", kill+1, done())
		w = workertest.Start(t, bin, workerEnv(db, r)...)
	}
	// Tasks held by killed workers come back after the 30 s lease plus the
	// recoverer's 30 s margin, at its next (minutely) sweep.
	workertest.WaitFor(t, 3*time.Minute, "every task to run", func() (bool, string) {
		n := done()
		return n == total, fmt.Sprint(n)
	})
	missing := workertest.Count(t, db.Owner, `SELECT count(*) FROM unnest($1::text[]) AS id
		WHERE NOT EXISTS (SELECT 1 FROM canary_runs c WHERE c.task_id = id)`, postgres.Array(ids))
	if missing != 0 {
		t.Fatalf("%d tasks never ran", missing)
	}
	if n := workertest.Count(t, db.Owner, `SELECT count(DISTINCT task_id) FROM canary_runs`); n != total {
		t.Fatalf("distinct rows = %d, want %d", n, total)
	}
	if n := workertest.Count(t, db.Owner, `SELECT count(*) FROM dead_tasks`); n != 0 {
		t.Fatalf("%d dead tasks after chaos", n)
	}
	again := workertest.Count(t, db.Owner, `SELECT count(*) FROM canary_runs WHERE runs > 1`)
	t.Logf("%d tasks ran more than once (held by a killed worker after their row was written)", again)
}

// Redis restart under load: writers keep committing (the outbox holds the
// tasks) while Redis is down, and once it is back every task runs once.
func TestRedisRestartDuringLoad(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "worker")
	db := postgrestest.New(t)
	r := redistest.StartPersistent(t)
	workertest.Start(t, bin, workerEnv(db, r)...)

	var written atomic.Int64
	var writeErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		task := canaries(t, 1, 0)[0]
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			err := postgres.InTx(context.Background(), db.App, uuid.Nil, func(tx *sqlx.Tx) error {
				_, err := outbox.Add(context.Background(), tx, task)
				return err
			})
			if err != nil {
				writeErr.Store(err)
				return
			}
			written.Add(1)
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	r.Stop()
	down := written.Load()
	time.Sleep(3 * time.Second)
	if gained := written.Load() - down; gained < 50 {
		t.Errorf("only %d writes committed while Redis was down", gained)
	}
	r.Restart()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err, _ := writeErr.Load().(error); err != nil {
		t.Fatalf("a write failed: %v", err)
	}
	total := int(written.Load())
	// A task whose dequeue Redis applied but never answered (the connection
	// died with the server) sits "active" under a lease no worker renews;
	// Asynq's recoverer hands it back once the lease is a minute stale, at
	// its next (minutely) sweep: up to about two minutes.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n := workertest.Count(t, db.Owner, `SELECT count(*) FROM canary_runs`)
		if n == total {
			break
		}
		if time.Now().After(deadline) {
			var missing []string
			_ = db.Owner.Select(&missing, `SELECT o.id::text FROM outbox o LEFT JOIN canary_runs c ON c.task_id = o.id::text WHERE c.task_id IS NULL`)
			opt, _ := asynq.ParseRedisURI(r.URL)
			insp := asynq.NewInspector(opt)
			for _, id := range missing {
				info, err := insp.GetTaskInfo(task.QueueDefault, id)
				if err != nil {
					t.Logf("missing %s: %v", id, err)
				} else {
					t.Logf("missing %s: state %v, retried %d, last error %q", id, info.State, info.Retried, info.LastErr)
				}
			}
			insp.Close()
			t.Fatalf("%d of %d tasks ran", n, total)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := workertest.Count(t, db.Owner, `SELECT count(*) FROM outbox WHERE dispatched_at IS NULL`); n != 0 {
		t.Fatalf("%d outbox rows never dispatched", n)
	}
	// At-least-once: a task running when Redis vanished cannot be marked done
	// and runs again after its lease; its effect still happened once (one
	// row per task, above).
	if n := workertest.Count(t, db.Owner, `SELECT count(*) FROM canary_runs WHERE runs <> 1`); n != 0 {
		t.Logf("%d tasks ran twice (in flight when Redis died)", n)
	}
	t.Logf("%d tasks, %d written from the moment Redis went down", total, total-int(down))
}

// SIGTERM: the worker stops taking tasks, lets in-flight ones finish within
// SHUTDOWN_TIMEOUT, and a task that needs longer goes back to the queue.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "worker")
	db := postgrestest.New(t)
	r := redistest.Start(t)
	w := workertest.Start(t, bin, workerEnv(db, r, "SHUTDOWN_TIMEOUT=2s")...)
	short := workertest.AddTasks(t, db.App, canaries(t, 3, 800), 10)
	long := workertest.AddTasks(t, db.App, canaries(t, 1, 6000), 10)[0]

	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: strings.TrimSuffix(strings.TrimPrefix(r.URL, "redis://"), "/0")})
	defer insp.Close()
	workertest.WaitFor(t, 20*time.Second, "4 active tasks", func() (bool, string) {
		info, err := insp.GetQueueInfo(task.QueueDefault)
		if err != nil {
			return false, err.Error()
		}
		return info.Active == 4, fmt.Sprint(info.Active)
	})
	took := w.Term(15 * time.Second)
	if took > 6*time.Second {
		t.Errorf("shutdown took %s with SHUTDOWN_TIMEOUT=2s", took)
	}
	if n := workertest.Count(t, db.Owner, `SELECT count(*) FROM canary_runs WHERE task_id = ANY($1)`, postgres.Array(short)); n != 3 {
		t.Fatalf("%d of 3 in-flight short tasks finished during shutdown", n)
	}
	info, err := insp.GetTaskInfo(task.QueueDefault, long)
	if err != nil {
		t.Fatalf("long task: %v", err)
	}
	if info.State != asynq.TaskStatePending {
		t.Fatalf("long task state after shutdown = %v, want pending (re-queued)", info.State)
	}
	workertest.Start(t, bin, workerEnv(db, r)...)
	workertest.WaitFor(t, 30*time.Second, "the re-queued task to run", func() (bool, string) {
		n := workertest.Count(t, db.Owner, `SELECT count(*) FROM canary_runs WHERE task_id = $1`, long)
		return n == 1, fmt.Sprint(n)
	})
}

// A task that cannot decode skips its retries, lands in dead_tasks with its
// organization, is counted, and `replay` enqueues it again under a new ID.
func TestDeadTaskRecordedAndReplayed(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "worker")
	db := postgrestest.New(t)
	r := redistest.Start(t)
	w := workertest.Start(t, bin, workerEnv(db, r)...)
	org := uuid.New()
	bad, err := task.SpecOf(task.TypeEmailSend).Outbox(org, []byte(`{"to": 42}`))
	if err != nil {
		t.Fatal(err)
	}
	id := workertest.AddTasks(t, db.App, []outbox.Task{bad}, 1)[0]

	workertest.WaitFor(t, 30*time.Second, "the dead task row", func() (bool, string) {
		return workertest.Count(t, db.Owner, `SELECT count(*) FROM dead_tasks WHERE task_id = $1`, id) == 1, ""
	})
	var d struct {
		Type  string        `db:"task_type"`
		Org   uuid.NullUUID `db:"tenant_org_id"`
		Error string        `db:"last_error"`
		ID    uuid.UUID     `db:"id"`
	}
	if err := db.Owner.Get(&d, `SELECT id, task_type, tenant_org_id, last_error FROM dead_tasks WHERE task_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if d.Type != task.TypeEmailSend || d.Org.UUID != org || !strings.Contains(d.Error, "decode") {
		t.Fatalf("dead task row: %+v", d)
	}
	workertest.WaitFor(t, 10*time.Second, "archived metric", func() (bool, string) {
		body := scrape(t, w.Metrics)
		return strings.Contains(body, `keel_tasks_archived_total{queue="default",type="email:send"} 1`) &&
			strings.Contains(body, `keel_queue_size{queue="default",state="archived"} 1`) &&
			strings.Contains(body, "keel_outbox_backlog 0"), ""
	})

	newID, err := (&deadtask.Service{DB: db.App}).Replay(context.Background(), d.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&deadtask.Service{DB: db.App}).Replay(context.Background(), d.ID, nil); err == nil {
		t.Fatal("a second replay of the same dead task succeeded")
	}
	// The replay runs with the same payload, so it dies too, as a new task.
	workertest.WaitFor(t, 30*time.Second, "the replayed task to run", func() (bool, string) {
		return workertest.Count(t, db.Owner, `SELECT count(*) FROM dead_tasks WHERE task_id = $1`, newID.String()) == 1, ""
	})
}

// The worker refuses, once and for good, a task whose organization does not
// match its type's tenancy: a tenant task without a valid org_id, or a
// platform task with one. Each becomes a dead task without running.
func TestTenancyViolationsAreDead(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "worker")
	db := postgrestest.New(t)
	r := redistest.Start(t)
	workertest.Start(t, bin, workerEnv(db, r)...)
	probe, err := task.NewCanaryTask(task.CanaryPayload{})
	if err != nil {
		t.Fatal(err)
	}
	probe.Headers = map[string]string{outbox.HeaderOrgID: uuid.NewString()}
	mail := func(org string) outbox.Task {
		s := task.SpecOf(task.TypeEmailSend)
		m := outbox.Task{Type: s.Type, Queue: s.Queue, MaxRetry: s.MaxRetry, Timeout: s.Timeout,
			Payload: []byte(`{"to":"x@example.com","template":"welcome","data":{"name":"X"}}`)}
		if org != "" {
			m.Headers = map[string]string{outbox.HeaderOrgID: org}
		}
		return m
	}
	ids := workertest.AddTasks(t, db.App, []outbox.Task{probe, mail(""), mail("not-a-uuid"), mail(uuid.Nil.String())}, 4)
	workertest.WaitFor(t, 30*time.Second, "four dead tasks", func() (bool, string) {
		n := workertest.Count(t, db.Owner, `SELECT count(*) FROM dead_tasks WHERE task_id = ANY($1)`, postgres.Array(ids))
		return n == 4, fmt.Sprint(n)
	})
	if n := workertest.Count(t, db.Owner, `SELECT count(*) FROM dead_tasks
		WHERE task_id = ANY($1) AND retried = 0 AND last_error LIKE '%task tenancy%'`, postgres.Array(ids)); n != 4 {
		var errs []string
		_ = db.Owner.Select(&errs, `SELECT task_type || ': ' || last_error FROM dead_tasks`)
		t.Fatalf("%d of 4 dead for their tenancy at the first attempt: %q", n, errs)
	}
	if n := workertest.Count(t, db.Owner, `SELECT (SELECT count(*) FROM canary_runs) + (SELECT count(*) FROM sent_emails)`); n != 0 {
		t.Fatalf("a refused task ran its handler (%d rows)", n)
	}
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
