package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/metrics"
)

// ErrOrgBusy is returned, without running the handler, for a task whose
// organization already has its limit of tasks running on this worker. It is
// not a failure (IsFailure): the task goes back to the retry set for a short
// delay without spending a retry.
var ErrOrgBusy = errors.New("organization at its concurrent task limit on this worker")

// IsFailure is Asynq's Config.IsFailure: everything but ErrOrgBusy counts.
func IsFailure(err error) bool { return !errors.Is(err, ErrOrgBusy) }

// RetryDelay returns Asynq's Config.RetryDelayFunc: exponential backoff from
// base doubling per retry up to max, with "equal jitter" (half fixed, half
// random) so tasks that failed together do not retry together. A throttled
// task (ErrOrgBusy) comes back after about a second.
func RetryDelay(base, max time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		if errors.Is(err, ErrOrgBusy) {
			return 500*time.Millisecond + rand.N(time.Second)
		}
		d := base
		for i := 0; i < n && d < max; i++ {
			d *= 2
		}
		d = min(d, max)
		return d/2 + rand.N(d/2+1)
	}
}

// OrgLimiter caps how many tasks of one organization run at once on this
// worker, so one tenant's burst cannot hold every slot while others wait.
// Tasks without an org_id header (platform jobs) are not limited.
type OrgLimiter struct {
	Limit   int
	Metrics *metrics.Tasks
	mu      sync.Mutex
	running map[string]int
}

func (o *OrgLimiter) acquire(org string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running == nil {
		o.running = map[string]int{}
	}
	if o.running[org] >= o.Limit {
		return false
	}
	o.running[org]++
	return true
}

func (o *OrgLimiter) release(org string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running[org]--; o.running[org] <= 0 {
		delete(o.running, org)
	}
}

// Running reports how many tasks of org run now; for tests.
func (o *OrgLimiter) Running(org string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.running[org]
}

// Middleware must be the outermost task middleware, so a throttled task is
// neither logged nor counted as processed. A task on its last attempt waits
// for a slot instead: Asynq archives any error on the last attempt, even one
// that is not a failure.
func (o *OrgLimiter) Middleware() asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			org := t.Headers()[outbox.HeaderOrgID]
			if org == "" || o.Limit <= 0 {
				return next.ProcessTask(ctx, t)
			}
			if !o.acquire(org) {
				retried, _ := asynq.GetRetryCount(ctx)
				maxRetry, _ := asynq.GetMaxRetry(ctx)
				if retried < maxRetry {
					if o.Metrics != nil {
						q, _ := asynq.GetQueueName(ctx)
						o.Metrics.Throttled(t.Type(), q)
					}
					return ErrOrgBusy
				}
				if err := o.wait(ctx, org); err != nil {
					return err
				}
			}
			defer o.release(org)
			return next.ProcessTask(ctx, t)
		})
	}
}

func (o *OrgLimiter) wait(ctx context.Context, org string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if o.acquire(org) {
				return nil
			}
		}
	}
}
