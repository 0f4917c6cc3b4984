// Package schedule fires periodic tasks. Each firing is enqueued with a task
// ID derived from its slot (`<type>:<slot time>`) and retained for at least
// the slot's length, so any number of scheduler replicas, or a restart within
// a slot, enqueue each slot once.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"
)

// Entry is one periodic task.
type Entry struct {
	Name     string // stable; used in task IDs and metrics
	Spec     string // cron spec, 5 fields, UTC
	Task     func(slot time.Time) *asynq.Task
	Options  []asynq.Option
	schedule cron.Schedule
}

// Enqueuer is the part of *asynq.Client the scheduler uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Scheduler fires Entries.
type Scheduler struct {
	Entries []Entry
	Queue   Enqueuer
	Log     zerolog.Logger
	// Fired, when set, is told of each firing and whether it was new.
	Fired func(entry string, enqueued bool, err error)
	now   func() time.Time
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

// Run fires every entry at each of its slots until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.now == nil {
		s.now = time.Now
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
	next := make([]time.Time, len(s.Entries))
	for i := range s.Entries {
		next[i] = s.Entries[i].schedule.Next(s.now().UTC())
	}
	for {
		soonest := 0
		for i := range next {
			if next[i].Before(next[soonest]) {
				soonest = i
			}
		}
		t := time.NewTimer(time.Until(next[soonest]))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		e := &s.Entries[soonest]
		slot := next[soonest]
		enq, err := s.Fire(ctx, e, slot)
		if s.Fired != nil {
			s.Fired(e.Name, enq, err)
		}
		if err != nil {
			s.Log.Error().Err(err).Str("entry", e.Name).Time("slot", slot).Msg("schedule fire failed")
		} else {
			s.Log.Info().Str("entry", e.Name).Time("slot", slot).Bool("enqueued", enq).Msg("schedule fired")
		}
		next[soonest] = e.schedule.Next(slot)
	}
}
