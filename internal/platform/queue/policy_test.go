package queue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/internal/platform/redistest"
)

func TestRetryDelayGrowsWithJitterWithinBounds(t *testing.T) {
	t.Parallel()
	f := queue.RetryDelay(time.Second, time.Minute)
	task := asynq.NewTask("x", nil)
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{0, 500 * time.Millisecond, time.Second},
		{3, 4 * time.Second, 8 * time.Second},
		{10, 30 * time.Second, time.Minute},
		{100, 30 * time.Second, time.Minute},
	} {
		seen := map[time.Duration]bool{}
		for i := 0; i < 50; i++ {
			d := f(tc.n, errors.New("boom"), task)
			if d < tc.min || d > tc.max {
				t.Fatalf("n=%d: delay %s outside [%s, %s]", tc.n, d, tc.min, tc.max)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("n=%d: only %d distinct delays in 50; no jitter?", tc.n, len(seen))
		}
	}
	if d := f(20, fmt.Errorf("wrapped: %w", queue.ErrOrgBusy), task); d > 2*time.Second {
		t.Errorf("throttled task waits %s", d)
	}
	if queue.IsFailure(fmt.Errorf("x: %w", queue.ErrOrgBusy)) || !queue.IsFailure(errors.New("x")) {
		t.Error("IsFailure must ignore ErrOrgBusy only")
	}
}

// Per-organization fairness on a real Asynq server: with a limit of 1, one
// organization's tasks never overlap on the worker while another's run
// beside them, and being throttled spends no retry.
func TestOrgLimiterOnServer(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	tm := metrics.NewTasks(reg)
	limiter := &queue.OrgLimiter{Limit: 1, Metrics: tm}

	var mu sync.Mutex
	running, peak := map[string]int{}, map[string]int{}
	retried := map[string]int{}
	var wg sync.WaitGroup
	mux := asynq.NewServeMux()
	mux.Use(limiter.Middleware(), queue.Middleware(zerolog.Nop(), tm))
	mux.HandleFunc("t", func(ctx context.Context, task *asynq.Task) error {
		org := task.Headers()[outbox.HeaderOrgID]
		if got := queue.OrgID(ctx).String(); got != org {
			t.Errorf("OrgID(ctx) = %s, want %s", got, org)
		}
		n, _ := asynq.GetRetryCount(ctx)
		mu.Lock()
		running[org]++
		peak[org] = max(peak[org], running[org])
		retried[org] = max(retried[org], n)
		mu.Unlock()
		time.Sleep(150 * time.Millisecond)
		mu.Lock()
		running[org]--
		mu.Unlock()
		wg.Done()
		return nil
	})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 6, RetryDelayFunc: queue.RetryDelay(time.Second, time.Minute),
		IsFailure: queue.IsFailure, DelayedTaskCheckInterval: 200 * time.Millisecond, Logger: queue.Logger(zerolog.Nop())})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	client := asynq.NewClient(opt)
	defer client.Close()
	busy, other := uuid.NewString(), uuid.NewString()
	for i := 0; i < 6; i++ {
		for _, org := range []string{busy, other} {
			if org == other && i >= 2 {
				continue
			}
			wg.Add(1)
			if _, err := client.Enqueue(asynq.NewTaskWithHeaders("t", nil, map[string]string{outbox.HeaderOrgID: org}), asynq.MaxRetry(1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("tasks did not all run")
	}
	mu.Lock()
	defer mu.Unlock()
	if peak[busy] != 1 || peak[other] != 1 {
		t.Fatalf("peak concurrency per org = %v, want 1 each", peak)
	}
	if retried[busy] != 0 {
		t.Fatalf("throttling spent retries: %v", retried)
	}
}
