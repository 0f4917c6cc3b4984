package ratelimit_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/ratelimit"
)

func TestMain(m *testing.M) {
	redistest.QuietClientLogs()
	os.Exit(m.Run())
}

func fixed(rate int64) plan.Fixed {
	return plan.Fixed{Plan: plan.Plan{ID: "p", Name: "P", Limits: plan.Limits{APIRequestsPerMinute: rate}}}
}

// TestAllow: 5 a minute is a burst of 5, then refusals with a Retry-After
// of one emission interval (12 s) at most; each organization has its own
// budget; an unlimited plan never touches Redis; a plan of 0 refuses.
func TestAllow(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	rdb := rs.Client()
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	l := ratelimit.New(rdb, fixed(5), nil)
	a, b := uuid.New(), uuid.New()
	for i := range 5 {
		r, err := l.Allow(ctx, a)
		if err != nil || !r.Allowed || r.Limit != 5 || r.Remaining != int64(4-i) || r.Used() != int64(i+1) {
			t.Fatalf("request %d: %+v %v", i+1, r, err)
		}
	}
	r, err := l.Allow(ctx, a)
	if err != nil || r.Allowed || r.Remaining != 0 || r.RetryAfter <= 0 || r.RetryAfter > 12*time.Second || r.Reset > time.Minute {
		t.Fatalf("6th: %+v %v", r, err)
	}
	if r, err := l.Allow(ctx, b); err != nil || !r.Allowed || r.Remaining != 4 {
		t.Fatalf("other org: %+v %v", r, err)
	}

	u := ratelimit.New(rdb, fixed(plan.Unlimited), nil)
	c := uuid.New()
	if r, err := u.Allow(ctx, c); err != nil || !r.Unlimited || !r.Allowed {
		t.Fatalf("unlimited: %+v %v", r, err)
	}
	if n, err := rdb.Exists(ctx, "rate:"+ratelimit.Key(c)).Result(); err != nil || n != 0 {
		t.Fatalf("an unlimited plan wrote to Redis: %d %v", n, err)
	}
	if r, err := ratelimit.New(rdb, fixed(0), nil).Allow(ctx, c); err != nil || r.Allowed {
		t.Fatalf("a plan of 0: %+v %v", r, err)
	}
	// Redis gone: an error, for the caller to decide.
	rs.Stop()
	if _, err := l.Allow(ctx, b); err == nil {
		t.Fatal("no error without Redis")
	}
}

// TestBatches: a budget of 1000 a minute is taken from Redis 10 at a time;
// the 9 requests after the first are served from the batch without a
// Redis call, and the 11th takes the next batch. Another replica (a second
// Limiter) sees the whole batch spent.
func TestBatches(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	rdb := rs.Client()
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	if ratelimit.Batch(1000) != 10 || ratelimit.Batch(199) != 1 || ratelimit.Batch(1_000_000) != ratelimit.MaxBatch {
		t.Fatal("batch sizes")
	}
	l := ratelimit.New(rdb, fixed(1000), nil)
	org := uuid.New()
	peek := func() int64 { // what another replica's next request sees, spent included
		t.Helper()
		r, err := ratelimit.New(rdb, fixed(1000), nil).Allow(ctx, org)
		if err != nil || !r.Allowed {
			t.Fatal(r, err)
		}
		return r.Remaining
	}
	for i := range 10 {
		r, err := l.Allow(ctx, org)
		if err != nil || !r.Allowed || r.Limit != 1000 {
			t.Fatalf("request %d: %+v %v", i+1, r, err)
		}
		if i == 0 && r.Remaining != 999 {
			t.Fatalf("first request: remaining %d, want 999", r.Remaining)
		}
	}
	// Redis holds 10 taken by l; peek's replica takes its own batch of 10
	// and counts its 9 unspent ones as remaining: 1000 - 20 + 9.
	if got := peek(); got != 989 {
		t.Fatalf("another replica sees %d remaining, want 989", got)
	}
	if r, err := l.Allow(ctx, org); err != nil || !r.Allowed || r.Remaining > 979 {
		t.Fatalf("11th request: %+v %v (want a new batch)", r, err)
	}
	// Redis gone: the first call fails, and the next ones at once.
	rs.Stop()
	l2 := ratelimit.New(rdb, fixed(1000), nil)
	for range 3 {
		if _, err := l2.Allow(ctx, org); err == nil {
			t.Fatal("no error without Redis")
		}
	}
}

// BenchmarkAllow measures one budget check (one EVALSHA round trip to a
// local Redis), from parallel goroutines as an API under load sends them.
//
//	go test -run XXX -bench Allow ./internal/ratelimit
func BenchmarkAllow(b *testing.B) {
	rs := redistest.Start(b)
	rdb := rs.Client()
	b.Cleanup(func() { rdb.Close() })
	l := ratelimit.New(rdb, fixed(1_000_000_000), nil)
	org := uuid.New()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Allow(context.Background(), org); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
