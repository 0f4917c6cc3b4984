// Package schedule fires periodic tasks. Each firing is enqueued with a task
// ID derived from its slot (`<type>:<slot time>`) and retained for at least
// the slot's length, so any number of scheduler replicas, or a restart within
// a slot, enqueue each slot once.
//
// Replicas share, through State, the latest slot each entry fired for. After
// downtime (every replica down, or a process suspended past a slot), an
// entry's Missed policy decides: fire the latest missed slot once, or skip.
//
// Time comes from the Scheduler's Clock, so tests drive the loop across many
// slots with clocktest.Fake instead of waiting for minute boundaries.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/platform/clock"
)

// Missed is what an entry does about slots that passed while no scheduler
// was running.
type Missed int

const (
	// MissedSkip drops missed slots; the entry next fires at its next slot.
	// For frequent entries, where the next slot comes soon anyway.
	MissedSkip Missed = iota
	// MissedFireOnce fires the latest missed slot once (however many were
	// missed), at start. For daily jobs that must not wait a day.
	MissedFireOnce
)

func (m Missed) String() string {
	if m == MissedFireOnce {
		return "fire-once"
	}
	return "skip"
}

// Entry is one periodic task.
type Entry struct {
	Name     string // stable; used in task IDs and metrics
	Spec     string // cron spec, 5 fields, UTC
	Task     func(slot time.Time) *asynq.Task
	Options  []asynq.Option
	Missed   Missed
	schedule cron.Schedule
}

// Enqueuer is the part of *asynq.Client the scheduler uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// State remembers, across replicas and restarts, the latest slot each entry
// fired (or deliberately skipped) for.
type State interface {
	// Last returns the entry's latest slot, the zero time when none.
	Last(ctx context.Context, entry string) (time.Time, error)
	// Advance records slot unless a later one is recorded.
	Advance(ctx context.Context, entry string, slot time.Time) error
}

// Scheduler fires Entries.
type Scheduler struct {
	Entries []Entry
	Queue   Enqueuer
	Log     zerolog.Logger
	// State, when set, lets the scheduler see missed slots; without it every
	// start is fresh and nothing counts as missed.
	State State
	// Grace is how late a slot may still fire as on time; later, it is
	// missed. Default 30 s.
	Grace time.Duration
	// Fired, when set, is told of each firing attempt and whether it was new.
	Fired func(entry string, enqueued bool, err error)
	// GaveUp, when set, is told of each slot whose firing failed until the
	// next slot began: that run did not happen.
	GaveUp func(entry string, slot time.Time, err error)
	// Skipped, when set, is told of each missed slot dropped by MissedSkip.
	Skipped func(entry string, slot time.Time)
	// Clock is the time slots are read from and waited for. Default
	// clock.Real.
	Clock clock.Clock
}

// Parse checks every entry's spec; call before Run so a bad table fails at start.
func (s *Scheduler) Parse() error {
	p := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)
	seen := map[string]bool{}
	for i := range s.Entries {
		e := &s.Entries[i]
		if e.Name == "" || seen[e.Name] {
			return fmt.Errorf("schedule: entry %d has an empty or repeated name %q", i, e.Name)
		}
		seen[e.Name] = true
		sch, err := p.Parse(e.Spec)
		if err != nil {
			return fmt.Errorf("schedule %s: %w", e.Name, err)
		}
		e.schedule = sch
	}
	return nil
}

// SlotID is the task ID of entry's firing at slot.
func SlotID(entry string, slot time.Time) string {
	return entry + ":" + slot.UTC().Format(time.RFC3339)
}

// Fire enqueues entry's task for slot. A slot another replica already
// enqueued is not an error.
func (s *Scheduler) Fire(ctx context.Context, e *Entry, slot time.Time) (bool, error) {
	next := e.schedule.Next(slot)
	retain := next.Sub(slot)
	if retain < time.Minute {
		retain = time.Minute
	}
	opts := append([]asynq.Option{asynq.TaskID(SlotID(e.Name, slot)), asynq.Retention(retain + time.Minute)}, e.Options...)
	_, err := s.Queue.EnqueueContext(ctx, e.Task(slot), opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return false, nil
	}
	return err == nil, err
}

// Decision is what to do about an entry at a moment.
type Decision int

// The decisions of Due.
const (
	Wait     Decision = iota // no slot is due
	FireSlot                 // fire the slot (on time, or the latest missed one under MissedFireOnce)
	SkipSlot                 // record the slot as handled without firing (MissedSkip)
)

// Due decides, for an entry whose latest handled slot is cursor, what to do
// at now: find the latest slot in (cursor, now]; fire it when it is at most
// grace old, else apply the entry's missed policy to it. Earlier slots in
// the window are dropped either way: a missed run fires at most once.
func Due(e *Entry, cursor, now time.Time, grace time.Duration) (Decision, time.Time) {
	var latest time.Time
	for s, n := e.schedule.Next(cursor), 0; !s.After(now) && n < 1_000_000; s, n = e.schedule.Next(s), n+1 {
		latest = s
	}
	switch {
	case latest.IsZero():
		return Wait, time.Time{}
	case now.Sub(latest) <= grace || e.Missed == MissedFireOnce:
		return FireSlot, latest
	default:
		return SkipSlot, latest
	}
}

// Run fires every entry at each of its slots until ctx ends. A failed
// enqueue (Redis down) is retried with backoff until the entry's next slot
// begins; firings of one entry never block another's.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.Clock == nil {
		s.Clock = clock.Real{}
	}
	if s.Grace <= 0 {
		s.Grace = 30 * time.Second
	}
	if len(s.Entries) == 0 {
		s.Log.Info().Msg("schedule is empty")
		<-ctx.Done()
		return nil
	}
	for i := range s.Entries {
		if s.Entries[i].schedule == nil {
			if err := s.Parse(); err != nil {
				return err
			}
			break
		}
	}
	now := s.Clock.Now().UTC()
	cursor := make([]time.Time, len(s.Entries))
	for i := range s.Entries {
		// Without a recorded slot only what falls within grace counts, so
		// a first deployment does not fire yesterday's slot.
		cursor[i] = now.Add(-s.Grace - time.Nanosecond)
		if s.State != nil {
			last, err := s.State.Last(ctx, s.Entries[i].Name)
			if err != nil {
				s.Log.Warn().Err(err).Str("entry", s.Entries[i].Name).Msg("schedule state unreadable; missed runs not detected")
			} else if !last.IsZero() {
				cursor[i] = last
			}
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		now = s.Clock.Now().UTC()
		wake := time.Time{}
		for i := range s.Entries {
			e := &s.Entries[i]
			switch d, slot := Due(e, cursor[i], now, s.Grace); d {
			case FireSlot:
				cursor[i] = slot
				late := now.Sub(slot) > s.Grace
				wg.Add(1)
				go func() { defer wg.Done(); s.fireInSlot(ctx, e, slot, late) }()
			case SkipSlot:
				cursor[i] = slot
				s.Log.Warn().Str("entry", e.Name).Time("slot", slot).Str("policy", e.Missed.String()).Msg("schedule skipped a missed slot")
				if s.Skipped != nil {
					s.Skipped(e.Name, slot)
				}
				s.advance(ctx, e, slot)
			}
			if n := e.schedule.Next(cursor[i]); wake.IsZero() || n.Before(wake) {
				wake = n
			}
		}
		if s.Clock.SleepUntil(ctx, wake) != nil {
			return nil
		}
	}
}

// fireInSlot fires e for slot, retrying failures with backoff until the next
// slot starts or ctx ends.
func (s *Scheduler) fireInSlot(ctx context.Context, e *Entry, slot time.Time, late bool) {
	deadline := e.schedule.Next(slot)
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		enq, err := s.Fire(ctx, e, slot)
		if s.Fired != nil {
			s.Fired(e.Name, enq, err)
		}
		if err == nil {
			s.Log.Info().Str("entry", e.Name).Time("slot", slot).Bool("enqueued", enq).Bool("missed", late).Int("attempt", attempt).Msg("schedule fired")
			s.advance(ctx, e, slot)
			return
		}
		wait := backoff
		now := s.Clock.Now()
		if until := deadline.Sub(now); until <= wait {
			s.Log.Error().Err(err).Str("entry", e.Name).Time("slot", slot).Int("attempts", attempt).Msg("schedule gave up on slot")
			if s.GaveUp != nil {
				s.GaveUp(e.Name, slot, err)
			}
			return
		}
		s.Log.Warn().Err(err).Str("entry", e.Name).Time("slot", slot).Dur("retry_in", wait).Msg("schedule fire failed")
		if s.Clock.SleepUntil(ctx, now.Add(wait)) != nil {
			return
		}
		if backoff < 10*time.Second {
			backoff *= 2
		}
	}
}

func (s *Scheduler) advance(ctx context.Context, e *Entry, slot time.Time) {
	if s.State == nil {
		return
	}
	if err := s.State.Advance(ctx, e.Name, slot); err != nil {
		s.Log.Warn().Err(err).Str("entry", e.Name).Msg("schedule state not saved")
	}
}
