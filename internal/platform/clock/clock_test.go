package clock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/clock"
)

func TestRealSleepUntil(t *testing.T) {
	t.Parallel()
	var c clock.Real
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.SleepUntil(ctx, c.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("past time: %v", err)
	}
	target := c.Now().Add(20 * time.Millisecond)
	if err := c.SleepUntil(ctx, target); err != nil || c.Now().Before(target) {
		t.Fatalf("woke at %s for %s: %v", c.Now(), target, err)
	}
	cancel()
	if err := c.SleepUntil(ctx, c.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sleep = %v", err)
	}
	if err := c.SleepUntil(ctx, c.Now().Add(-time.Hour)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled, past time = %v", err)
	}
}

// Two Scaled clocks built from the same settings (two processes) agree, run
// Rate times faster than the system clock, and wake once they reach the
// time asked for.
func TestScaled(t *testing.T) {
	t.Parallel()
	origin := time.Now().Add(-time.Second)
	a, b := clock.Scaled{Origin: origin, Rate: 60}, clock.Scaled{Origin: origin, Rate: 60}
	before := time.Now()
	na, nb := a.Now(), b.Now()
	after := time.Now()
	for _, n := range []time.Time{na, nb} {
		lo, hi := origin.Add(60*before.Sub(origin)), origin.Add(60*after.Sub(origin))
		if n.Before(lo) || n.After(hi) {
			t.Fatalf("Now = %s, want within [%s, %s]", n, lo, hi)
		}
	}
	if d := nb.Sub(na); d < 0 || d > 60*after.Sub(before) {
		t.Fatalf("clocks apart by %s", d)
	}
	target := a.Now().Add(3 * time.Second) // 50 ms of real time
	start := time.Now()
	if err := a.SleepUntil(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	if now := a.Now(); now.Before(target) {
		t.Fatalf("woke at %s, before %s", now, target)
	}
	if slept := time.Since(start); slept >= 3*time.Second {
		t.Fatalf("slept %s of real time for 3 s of scaled time", slept)
	}
}
