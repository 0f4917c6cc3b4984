package clocktest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/clock/clocktest"
)

func TestFake(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	f := clocktest.New(t0)
	if !f.Now().Equal(t0) {
		t.Fatalf("Now = %s", f.Now())
	}
	ctx := context.Background()
	if err := f.SleepUntil(ctx, t0); err != nil {
		t.Fatalf("sleep until now: %v", err)
	}

	woke := make(chan time.Duration, 2)
	for _, d := range []time.Duration{time.Minute, time.Hour} {
		go func() {
			if err := f.SleepUntil(ctx, t0.Add(d)); err != nil {
				t.Error(err)
			}
			woke <- d
		}()
	}
	f.WaitSleepers(t, 2)
	f.Advance(time.Minute - time.Nanosecond)
	if f.Sleepers() != 2 {
		t.Fatalf("a sleeper woke before its time")
	}
	f.Advance(time.Nanosecond)
	if d := <-woke; d != time.Minute {
		t.Fatalf("woke the %s sleeper at one minute", d)
	}
	f.WaitSleepers(t, 1)
	f.Set(t0.Add(2 * time.Hour))
	if d := <-woke; d != time.Hour {
		t.Fatalf("woke the %s sleeper", d)
	}
	if !f.Now().Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("Now = %s after Set", f.Now())
	}

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- f.SleepUntil(cctx, f.Now().Add(time.Hour)) }()
	f.WaitSleepers(t, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sleep = %v", err)
	}
	f.WaitSleepers(t, 0)
}
