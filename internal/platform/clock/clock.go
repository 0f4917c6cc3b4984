// Package clock is the time source of Keel's time-bound code: the scheduler
// today, and every capability that acts when a moment passes (trial:expire,
// dunning, reconciliation). Such code takes a Clock as a dependency instead
// of calling time.Now or time.After, so its tests drive time with
// clocktest.Fake rather than waiting for it:
//
//	type Service struct {
//		Clock clock.Clock // clock.Real{} in production
//		...
//	}
//
//	expired := trial.EndsAt.Before(s.Clock.Now())
//
// Production wires Real. Scaled exists for end-to-end tests of a real binary
// and is accepted only where a binary's configuration says so (ENV=test).
package clock

import (
	"context"
	"time"
)

// Clock tells the time and waits for it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// SleepUntil blocks until the clock reaches t, returning nil, or until
	// ctx ends, returning ctx.Err(). It returns at once when t is not after
	// Now (with ctx.Err(), which is nil while ctx lives).
	SleepUntil(ctx context.Context, t time.Time) error
}

// Real is the system clock.
type Real struct{}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// SleepUntil implements Clock.
func (Real) SleepUntil(ctx context.Context, t time.Time) error {
	return sleep(ctx, time.Until(t))
}

// Scaled is the system clock running Rate times faster from Origin on:
// Now is Origin + Rate × (real time since Origin). Processes given the same
// Origin and Rate agree on the time, so replicas of a binary can be tested
// across many slots in seconds. It is for tests only, with a recent Origin:
// Rate × (time since Origin) must fit a time.Duration (292 years).
type Scaled struct {
	Origin time.Time
	Rate   int
}

// Now implements Clock.
func (s Scaled) Now() time.Time {
	return s.Origin.Add(time.Since(s.Origin) * time.Duration(s.rate()))
}

// SleepUntil implements Clock.
func (s Scaled) SleepUntil(ctx context.Context, t time.Time) error {
	return sleep(ctx, t.Sub(s.Now())/time.Duration(s.rate()))
}

func (s Scaled) rate() int { return max(s.Rate, 1) }

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
