// Package queuetest runs real Asynq servers and inspectors against a test's
// private Redis and records what they process, for tests that must see a
// task arrive (and arrive once).
package queuetest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/platform/redistest"
)

// Queues are the queues Keel's worker serves, with its weights.
var Queues = map[string]int{"critical": 6, "default": 3, "low": 1}

// Opt is the Asynq connection to s.
func Opt(s *redistest.Server) asynq.RedisClientOpt {
	return asynq.RedisClientOpt{Addr: s.Addr()}
}

// Client returns an Asynq client of s, closed when t ends.
func Client(t testing.TB, s *redistest.Server) *asynq.Client {
	t.Helper()
	c := asynq.NewClient(Opt(s))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Inspector returns an Asynq inspector of s, closed when t ends.
func Inspector(t testing.TB, s *redistest.Server) *asynq.Inspector {
	t.Helper()
	i := asynq.NewInspector(Opt(s))
	t.Cleanup(func() { _ = i.Close() })
	return i
}

// Serve runs an Asynq server on s with h on Keel's queues and shuts it down
// when t ends.
func Serve(t testing.TB, s *redistest.Server, h asynq.Handler) {
	t.Helper()
	srv := asynq.NewServer(Opt(s), asynq.Config{
		Concurrency:     8,
		Queues:          Queues,
		LogLevel:        asynq.FatalLevel,
		ShutdownTimeout: 5 * time.Second,
		// Retries come back at once so tests of failure paths stay short.
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond },
		DelayedTaskCheckInterval: 100 * time.Millisecond,
	})
	if err := srv.Start(h); err != nil {
		t.Fatalf("queuetest: start server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
}

// Recorder is a handler that counts how often it ran each task ID.
type Recorder struct {
	// Next, when set, runs after the task is counted; its error is returned.
	Next asynq.Handler

	mu     sync.Mutex
	counts map[string]int
}

// ProcessTask implements asynq.Handler.
func (r *Recorder) ProcessTask(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	r.mu.Lock()
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	r.counts[id]++
	r.mu.Unlock()
	if r.Next != nil {
		return r.Next.ProcessTask(ctx, t)
	}
	return nil
}

// Counts returns a copy of the runs per task ID.
func (r *Recorder) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// WaitFor polls until the recorder has seen n distinct task IDs, failing t
// after timeout.
func (r *Recorder) WaitFor(t testing.TB, n int, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := r.Counts()
		if len(c) >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("queuetest: saw %d of %d tasks within %s", len(c), n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// QueueInfo returns queue's counts, all zero when the queue does not exist yet.
func QueueInfo(t testing.TB, i *asynq.Inspector, queue string) asynq.QueueInfo {
	t.Helper()
	qs, err := i.Queues()
	if err != nil {
		t.Fatalf("queuetest: queues: %v", err)
	}
	if !slices.Contains(qs, queue) {
		return asynq.QueueInfo{Queue: queue}
	}
	qi, err := i.GetQueueInfo(queue)
	if err != nil {
		t.Fatalf("queuetest: queue %s: %v", queue, err)
	}
	return *qi
}

// Eventually polls cond until it holds, failing t with msg after timeout.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
