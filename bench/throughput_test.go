package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/internal/platform/queuetest"
	"github.com/keelhq/keel/internal/platform/redistest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// clients is how many writers insert (or enqueue) at once.
const clients = 8

// split runs fn(i) for i in [0, n) over `clients` goroutines.
func split(n int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// BenchmarkEnqueueBare: 8 clients enqueue tasks straight to Asynq (with a
// task ID and retention, as the relay does).
func BenchmarkEnqueueBare(b *testing.B) {
	rs := redistest.Start(b)
	client := asynq.NewClient(queuetest.Opt(rs))
	defer client.Close()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	b.ResetTimer()
	start := time.Now()
	err := split(b.N, func(i int) error {
		_, err := client.Enqueue(asynq.NewTask("bench:noop", []byte(`{}`)), asynq.TaskID(ids[i]), asynq.Retention(time.Hour))
		return err
	})
	el := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "tasks/s")
}

// BenchmarkOutboxRelayDrain: rows already committed (by 8 clients, untimed);
// measures the relay alone moving them to Asynq.
func BenchmarkOutboxRelayDrain(b *testing.B) {
	rs := redistest.Start(b)
	db := postgrestest.New(b)
	client := asynq.NewClient(queuetest.Opt(rs))
	defer client.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := split(b.N, func(i int) error {
		return postgres.InTx(ctx, db.App, uuid.Nil, func(tx *sqlx.Tx) error {
			_, err := outbox.Add(ctx, tx, outbox.Task{Type: "bench:noop", Payload: []byte(`{}`)})
			return err
		})
	}); err != nil {
		b.Fatal(err)
	}
	var moved atomic.Int64
	relay := &outbox.Relay{DB: db.App, Queue: client, Log: zerolog.Nop(), Idle: 50 * time.Millisecond, Batch: benchBatch(), Loops: benchLoops(), InFlight: envInt("BENCH_INFLIGHT", 0),
		Dispatched: func(n int) { moved.Add(int64(n)) }}
	b.ResetTimer()
	start := time.Now()
	go relay.Run(ctx)
	for moved.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
}

// BenchmarkOutboxRelay: 8 clients each commit outbox rows (one transaction
// per row, as an API request would) while the relay runs; measured from the
// first insert until the last row is enqueued.
func BenchmarkOutboxRelay(b *testing.B) {
	rs := redistest.Start(b)
	db := postgrestest.New(b)
	client := asynq.NewClient(queuetest.Opt(rs))
	defer client.Close()
	insp := asynq.NewInspector(queuetest.Opt(rs))
	defer insp.Close()

	var moved atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake := outbox.Listen(ctx, db.AppURL, zerolog.Nop())
	relay := &outbox.Relay{DB: db.App, Queue: client, Log: zerolog.Nop(), Wake: wake, Idle: 50 * time.Millisecond,
		Dispatched: func(n int) { moved.Add(int64(n)) }}
	b.ResetTimer()
	start := time.Now()
	go relay.Run(ctx)
	err := split(b.N, func(i int) error {
		return postgres.InTx(ctx, db.App, uuid.Nil, func(tx *sqlx.Tx) error {
			_, err := outbox.Add(ctx, tx, outbox.Task{Type: "bench:noop", Payload: []byte(`{}`)})
			return err
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	for moved.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
	if q, err := insp.GetQueueInfo("default"); err != nil || q.Size < b.N {
		b.Fatalf("queue holds %v tasks (err %v), want %d", q, err, b.N)
	}
}

// process enqueues n no-op tasks, then runs an Asynq server with handler
// until all are done, and returns tasks/s.
func process(b *testing.B, n, concurrency int, wrap func(asynq.Handler) asynq.Handler) float64 {
	rs := redistest.Start(b)
	opt := queuetest.Opt(rs)
	client := asynq.NewClient(opt)
	defer client.Close()
	if err := split(n, func(int) error {
		_, err := client.Enqueue(asynq.NewTask("bench:noop", []byte(`{}`)))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	var done atomic.Int64
	all := make(chan struct{})
	var h asynq.Handler = asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(all)
		}
		return nil
	})
	mux := asynq.NewServeMux()
	if wrap != nil {
		mux.Use(wrap)
	}
	mux.Handle("bench:noop", h)
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: concurrency, Logger: queue.Logger(zerolog.Nop()),
		Queues: map[string]int{"critical": 6, "default": 3, "low": 1}})
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	<-all
	el := time.Since(start)
	srv.Shutdown()
	return float64(n) / el.Seconds()
}

const workerConcurrency = 10

// BenchmarkProcessBare: a bare Asynq server works through no-op tasks.
func BenchmarkProcessBare(b *testing.B) {
	b.ReportMetric(process(b, b.N, workerConcurrency, nil), "tasks/s")
}

// BenchmarkProcessWorker: the same with Keel's worker middleware (context
// from headers, structured log per task, metrics).
func BenchmarkProcessWorker(b *testing.B) {
	reg := metrics.NewRegistry()
	mw := queue.Middleware(zerolog.New(discard{}), metrics.NewTasks(reg))
	b.ReportMetric(process(b, b.N, workerConcurrency, mw), "tasks/s")
}

// discard is an io.Writer that keeps nothing, so log formatting still runs.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func benchBatch() int { return envInt("BENCH_BATCH", 0) }
func benchLoops() int { return envInt("BENCH_LOOPS", 0) }

func envInt(k string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(k), &n); err != nil {
		return def
	}
	return n
}
