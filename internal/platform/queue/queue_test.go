package queue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/internal/platform/queuetest"
	"github.com/keelhq/keel/internal/platform/redistest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// What an HTTP request knew (its request ID, the org, the actor) reaches
// the task's handler and every log line the task writes.
func TestMiddlewareCarriesRequestContextIntoTasks(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	rs := redistest.Start(t)
	var logs syncBuffer
	log := zerolog.New(&logs)
	reg := prometheus.NewRegistry()
	tasks := metrics.NewTasks(reg)

	type seen struct{ requestID, taskID string }
	got := make(chan seen, 2)
	mux := asynq.NewServeMux()
	mux.Use(queue.Middleware(log, tasks))
	mux.HandleFunc("test:ok", func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		zerolog.Ctx(ctx).Info().Msg("handler ran")
		got <- seen{logging.RequestID(ctx), id}
		return nil
	})
	mux.HandleFunc("test:fail", func(ctx context.Context, t *asynq.Task) error {
		return errors.New("temporary trouble")
	})
	mux.HandleFunc("test:skip", func(ctx context.Context, t *asynq.Task) error {
		return asynq.SkipRetry
	})
	queuetest.Serve(t, rs, mux)

	ctx := logging.WithRequestID(context.Background(), "req-abcdef123456")
	var okID uuid.UUID
	err := postgres.InTx(ctx, d.App, uuid.Nil, func(tx *sqlx.Tx) error {
		var err error
		okID, err = outbox.Add(ctx, tx, outbox.Task{Type: "test:ok", Headers: map[string]string{outbox.HeaderOrgID: "org-7", outbox.HeaderActorID: "user-9"}})
		if err != nil {
			return err
		}
		if _, err := outbox.Add(ctx, tx, outbox.Task{Type: "test:fail", MaxRetry: 1}); err != nil {
			return err
		}
		_, err = outbox.Add(ctx, tx, outbox.Task{Type: "test:skip", MaxRetry: 5})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	relay := &outbox.Relay{DB: d.App, Queue: queuetest.Client(t, rs), Log: zerolog.Nop()}
	if n, err := relay.RunOnce(ctx); n != 3 || err != nil {
		t.Fatalf("relay: %d, %v", n, err)
	}

	select {
	case s := <-got:
		if s.requestID != "req-abcdef123456" || s.taskID != okID.String() {
			t.Errorf("handler saw request %q task %q", s.requestID, s.taskID)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("test:ok never ran")
	}
	insp := queuetest.Inspector(t, rs)
	queuetest.Eventually(t, 15*time.Second, "test:fail retried and archived, test:skip archived", func() bool {
		return queuetest.QueueInfo(t, insp, "default").Archived == 2
	})

	var handlerLine, okLine map[string]any
	finals := map[string]bool{}
	queuetest.Eventually(t, 5*time.Second, "the outcome of every task is logged", func() bool {
		handlerLine, okLine = nil, nil
		finals = map[string]bool{}
		for _, l := range logs.lines(t) {
			switch {
			case l["message"] == "handler ran":
				handlerLine = l
			case l["message"] == "task" && l["task_type"] == "test:ok":
				okLine = l
			case l["message"] == "task" && l["final"] == true:
				finals[l["task_type"].(string)] = l["level"] == "error"
			}
		}
		return handlerLine != nil && okLine != nil && len(finals) == 2
	})
	for k, v := range map[string]any{"request_id": "req-abcdef123456", "task_id": okID.String(), "task_type": "test:ok",
		"queue": "default", "org_id": "org-7", "actor_id": "user-9"} {
		if handlerLine[k] != v {
			t.Errorf("handler log %s = %v, want %v (%v)", k, handlerLine[k], v, handlerLine)
		}
		if okLine[k] != v {
			t.Errorf("outcome log %s = %v, want %v", k, okLine[k], v)
		}
	}
	if !finals["test:fail"] || !finals["test:skip"] {
		t.Errorf("final failures not logged as errors: %v", finals)
	}

	if v := counter(t, reg, "keel_tasks_processed_total", "test:ok"); v != 1 {
		t.Errorf("processed test:ok = %v", v)
	}
	if v := counter(t, reg, "keel_tasks_failed_total", "test:fail"); v != 2 {
		t.Errorf("failed test:fail = %v, want 2 (first try and one retry)", v)
	}
	if v := counter(t, reg, "keel_tasks_failed_total", "test:skip"); v != 1 {
		t.Errorf("failed test:skip = %v, want 1 (SkipRetry)", v)
	}
}

// counter reads one series of a task counter by type; 0 when absent.
func counter(t *testing.T, reg *prometheus.Registry, name, typ string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "type" && lp.GetValue() == typ {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
