// Package clocktest provides Fake, a clock.Clock that moves only when a test
// moves it, so time-bound code (the scheduler, expiries, dunning) is tested
// across minutes, days or months in milliseconds.
//
// The usual loop: start the code under test, WaitSleepers until each of its
// goroutines is parked in SleepUntil, Advance (or Set) the clock, and wait
// for the outcome or for the sleepers again before the next step. Waiting for
// the sleepers is what keeps a step from racing the code's previous one.
package clocktest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/clock"
)

var _ clock.Clock = (*Fake)(nil)

// Fake is a manual clock. Its zero value is not usable; call New.
type Fake struct {
	mu       sync.Mutex
	now      time.Time
	sleepers map[*sleeper]struct{}
	changed  chan struct{} // closed and replaced whenever sleepers change
}

type sleeper struct {
	until time.Time
	wake  chan struct{}
}

// New returns a Fake reading now until it is moved.
func New(now time.Time) *Fake {
	return &Fake{now: now, sleepers: map[*sleeper]struct{}{}, changed: make(chan struct{})}
}

// Now implements clock.Clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// SleepUntil implements clock.Clock: it returns when Advance or Set reach t.
func (f *Fake) SleepUntil(ctx context.Context, t time.Time) error {
	f.mu.Lock()
	if !t.After(f.now) {
		f.mu.Unlock()
		return ctx.Err()
	}
	s := &sleeper{until: t, wake: make(chan struct{})}
	f.sleepers[s] = struct{}{}
	f.signal()
	f.mu.Unlock()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		f.mu.Lock()
		if _, ok := f.sleepers[s]; ok {
			delete(f.sleepers, s)
			f.signal()
		}
		f.mu.Unlock()
		return ctx.Err()
	}
}

// Advance moves the clock forward by d, waking every sleeper it reaches.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set(f.now.Add(d))
}

// Set moves the clock to t, waking every sleeper whose time t reaches. A t
// before Now turns the clock back (as NTP may), waking no one.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set(t)
}

func (f *Fake) set(t time.Time) {
	f.now = t
	woke := false
	for s := range f.sleepers {
		if !s.until.After(t) {
			delete(f.sleepers, s)
			close(s.wake)
			woke = true
		}
	}
	if woke {
		f.signal()
	}
}

// Sleepers returns how many goroutines are in SleepUntil.
func (f *Fake) Sleepers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sleepers)
}

// WaitSleepers waits until exactly n goroutines are in SleepUntil, failing
// t after 10 s of real time.
func (f *Fake) WaitSleepers(t testing.TB, n int) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		f.mu.Lock()
		got, changed := len(f.sleepers), f.changed
		f.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("clocktest: %d goroutines sleeping after 10s, want %d", got, n)
		}
	}
}

// signal tells WaitSleepers that the sleepers changed; f.mu is held.
func (f *Fake) signal() {
	close(f.changed)
	f.changed = make(chan struct{})
}
