package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/sentineltest"
	"github.com/keelhq/keel/internal/platform/workertest"
	"github.com/keelhq/keel/jobs/task"
)

// Redis failover under Sentinel, with the worker binary configured by
// REDIS_URL=redis-sentinel://… and REDIS_MIN_REPLICA_ACKS=1.
//
// A first burst runs and is replicated. Then the replica's link is held, so
// that everything the master acknowledges from here on (the second burst's
// enqueues, its runs, their completions) never reaches the replica: the
// asynchronous-replication window, opened wide. The master is SIGKILLed
// while the second burst runs, the Sentinels promote the replica, which has
// none of the second burst's tasks, and the old master comes back empty as
// the new master's replica. Because the relay marked no row whose task the
// replica had not acknowledged, it enqueues the lost tasks again on the new
// master: every task runs, and the tasks that ran on the old master before
// it died run a second time (at-least-once; handlers are idempotent).
func TestSentinelFailoverLosesNoOutboxTask(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "worker")
	db := postgrestest.New(t)
	began := time.Now()
	c := sentineltest.Start(t)
	t.Logf("cluster up in %s", time.Since(began).Round(100*time.Millisecond))
	env := []string{
		"DATABASE_URL=" + db.AppURL, "REDIS_URL=" + c.URL(),
		"REDIS_MIN_REPLICA_ACKS=1", "REDIS_REPLICA_ACK_TIMEOUT=200ms",
		"WORKER_CONCURRENCY=8", "OUTBOX_RELAY_INTERVAL=50ms", "OUTBOX_RELAY_BATCH=1000", "SHUTDOWN_TIMEOUT=3s",
		"WORKER_RETRY_BASE=200ms", "WORKER_RETRY_MAX=2s",
	}
	w := workertest.Start(t, bin, env...)
	ctx := context.Background()
	ran := func(ids []string) int {
		return workertest.Count(t, db.Owner, `SELECT count(*) FROM canary_runs WHERE task_id = ANY($1)`, postgres.Array(ids))
	}
	pending := func() int {
		return workertest.Count(t, db.Owner, `SELECT count(*) FROM outbox WHERE dispatched_at IS NULL`)
	}

	// Burst one, replicated: every task ran and completed on the master, and
	// the replica is at the master's offset.
	const first, second = 100, 300
	ids1 := workertest.AddTasks(t, db.App, canaries(t, first, 5), 20)
	queueOnMaster := asynq.NewInspector(asynq.RedisClientOpt{Addr: c.Master.Addr()})
	defer queueOnMaster.Close()
	workertest.WaitFor(t, 30*time.Second, "burst one to run, be marked and be replicated", func() (bool, string) {
		n, p := ran(ids1), pending()
		qi, err := queueOnMaster.GetQueueInfo(task.QueueDefault)
		if err != nil || n < first || p > 0 || qi.Active+qi.Pending+qi.Retry > 0 {
			return false, fmt.Sprintf("ran %d, outbox pending %d, queue %+v %v", n, p, qi, err)
		}
		mo, err1 := c.Offset(ctx, c.Master)
		ro, err2 := c.Offset(ctx, c.Replica)
		return err1 == nil && err2 == nil && mo == ro, fmt.Sprintf("master offset %d, replica %d", mo, ro)
	})

	// Burst two, acknowledged by the master alone.
	t.Logf("burst one done %s after the cluster started", time.Since(began).Round(100*time.Millisecond))
	c.Link.Hold()
	ids2 := workertest.AddTasks(t, db.App, canaries(t, second, 20), 50)
	deadline := time.Now().Add(30 * time.Second)
	for ran(ids2) < second/5 {
		if time.Now().After(deadline) {
			t.Fatalf("burst two did not start: %d ran", ran(ids2))
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Master.Kill()
	killed := time.Now()
	c.Link.Cut()
	notReady := watchNotReady(t, w.Metrics+"/readyz", killed)
	ranBeforeKill, pendingAtKill := ran(ids2), pending()
	t.Logf("master SIGKILLed with %d of %d burst-two tasks run, %d outbox rows unconfirmed, %d replication bytes held back",
		ranBeforeKill, second, pendingAtKill, c.Link.Kept())
	if pendingAtKill < second {
		t.Errorf("%d outbox rows pending at the kill, want all %d: the relay marked rows the replica never acknowledged", pendingAtKill, second)
	}

	var promoted string
	workertest.WaitFor(t, 90*time.Second, "the Sentinels to promote the replica", func() (bool, string) {
		promoted = c.MasterAddr(ctx)
		return promoted == c.Replica.Addr(), "master is " + promoted
	})
	failover := time.Since(killed)
	queueOnNew := asynq.NewInspector(asynq.RedisClientOpt{Addr: promoted})
	defer queueOnNew.Close()
	lost := 0
	for _, id := range ids2 {
		if _, err := queueOnNew.GetTaskInfo(task.QueueDefault, id); err != nil {
			lost++
		}
	}
	t.Logf("replica promoted %s after the kill; %d of %d burst-two tasks absent from it just after (the relay may have re-enqueued some already)",
		failover.Round(100*time.Millisecond), lost, second)
	c.RestartAsReplicaOf(c.Master, promoted)

	all := append(append([]string{}, ids1...), ids2...)
	workertest.WaitFor(t, 60*time.Second, "every task to run", func() (bool, string) {
		n := ran(all)
		return n == len(all), fmt.Sprintf("%d of %d ran", n, len(all))
	})
	allRan := time.Since(killed)
	workertest.WaitFor(t, 60*time.Second, "every outbox row to be confirmed", func() (bool, string) {
		p := pending()
		return p == 0, fmt.Sprintf("%d pending", p)
	})
	drained := time.Since(killed)
	downFrom, downTo := notReady()
	if downTo == 0 {
		t.Errorf("/readyz never answered 503 while no master was reachable")
	}
	t.Logf("worker /readyz answered 503 from %s to %s after the kill",
		downFrom.Round(100*time.Millisecond), downTo.Round(100*time.Millisecond))

	twice := workertest.Count(t, db.Owner, `SELECT count(*) FROM canary_runs WHERE runs > 1 AND task_id = ANY($1)`, postgres.Array(all))
	if n := workertest.Count(t, db.Owner, `SELECT count(*) FROM dead_tasks`); n != 0 {
		t.Errorf("%d dead tasks after the failover", n)
	}
	// A task that ran on the old master and was lost with it runs again on
	// the new one: at least as many ran twice as ran before the kill.
	if twice < ranBeforeKill {
		t.Errorf("%d tasks ran twice, fewer than the %d that ran on the lost master", twice, ranBeforeKill)
	}
	t.Logf("every one of %d tasks ran %s after the kill, outbox drained after %s; %d ran twice (%d had run on the lost master before the kill)",
		len(all), allRan.Round(100*time.Millisecond), drained.Round(100*time.Millisecond), twice, ranBeforeKill)
	logSummary(t, w.Output())
}

// watchNotReady polls url every 100 ms from now on and returns a function
// that stops polling and says when, after since, the first and the last
// answer other than 200 came (zero when none did).
func watchNotReady(t *testing.T, url string, since time.Time) func() (first, last time.Duration) {
	t.Helper()
	var mu sync.Mutex
	var first, last time.Duration
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl := &http.Client{Timeout: 2 * time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			resp, err := cl.Get(url)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				resp.Body.Close()
			}
			if !ok {
				at := time.Since(since)
				mu.Lock()
				if first == 0 {
					first = at
				}
				last = at
				mu.Unlock()
			}
		}
	}()
	var once sync.Once
	halt := func() { once.Do(func() { close(stop); <-done }) }
	t.Cleanup(halt) // a test that fails early still stops polling
	return func() (time.Duration, time.Duration) {
		halt()
		mu.Lock()
		defer mu.Unlock()
		return first, last
	}
}

// logSummary logs each distinct message the worker logged at warn or above,
// with its count and a sample error: what an operator sees in a failover.
func logSummary(t *testing.T, out string) {
	t.Helper()
	type entry struct {
		n      int
		sample string
	}
	seen := map[string]*entry{}
	for _, line := range strings.Split(out, "\n") {
		var l struct {
			Level, Message, Error string
		}
		if json.Unmarshal([]byte(line), &l) != nil || (l.Level != "warn" && l.Level != "error") {
			continue
		}
		msg := l.Message
		if i := strings.Index(msg, " id="); i >= 0 {
			msg = msg[:i] + " id=…" // one line per task otherwise
		}
		key := l.Level + " " + msg
		if seen[key] == nil {
			seen[key] = &entry{sample: l.Error}
		}
		seen[key].n++
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := seen[k].sample
		if len(s) > 160 {
			s = s[:160] + "…"
		}
		t.Logf("worker log: %dx %q %s", seen[k].n, k, s)
	}
}
