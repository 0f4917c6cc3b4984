package schedule_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/platform/queuetest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/schedule"
)

func entry(name, spec string) schedule.Entry {
	return schedule.Entry{Name: name, Spec: spec, Task: func(slot time.Time) *asynq.Task {
		return asynq.NewTask("test:"+name, []byte(slot.UTC().Format(time.RFC3339)))
	}}
}

func TestParseRejectsBadTables(t *testing.T) {
	t.Parallel()
	cases := map[string][]schedule.Entry{
		"bad spec":      {entry("a", "every minute")},
		"six fields":    {entry("a", "0 * * * * *")},
		"empty name":    {entry("", "* * * * *")},
		"repeated name": {entry("a", "* * * * *"), entry("a", "0 * * * *")},
	}
	for name, entries := range cases {
		s := &schedule.Scheduler{Entries: entries}
		if err := s.Parse(); err == nil {
			t.Errorf("%s: Parse accepted %+v", name, entries)
		}
	}
	s := &schedule.Scheduler{Entries: []schedule.Entry{entry("a", "*/5 * * * *"), entry("b", "0 3 * * *")}}
	if err := s.Parse(); err != nil {
		t.Fatal(err)
	}
}

// Two scheduler replicas firing the same slot enqueue it once, and the slot
// stays taken after the task has run (retention), while the next slot is new.
func TestReplicasFireEachSlotOnce(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	insp := queuetest.Inspector(t, rs)
	replica := func() *schedule.Scheduler {
		s := &schedule.Scheduler{Entries: []schedule.Entry{entry("tick", "*/5 * * * *")}, Queue: queuetest.Client(t, rs), Log: zerolog.Nop()}
		if err := s.Parse(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := replica(), replica()
	slot := time.Date(2026, 11, 26, 9, 5, 0, 0, time.UTC)
	ctx := context.Background()
	enq, err := a.Fire(ctx, &a.Entries[0], slot)
	if !enq || err != nil {
		t.Fatalf("first replica: %v, %v", enq, err)
	}
	if enq, err := b.Fire(ctx, &b.Entries[0], slot); enq || err != nil {
		t.Fatalf("second replica, same slot: %v, %v; want a silent duplicate", enq, err)
	}
	id := schedule.SlotID("tick", slot)
	if id != "tick:2026-11-26T09:05:00Z" {
		t.Errorf("SlotID = %q", id)
	}
	info, err := insp.GetTaskInfo("default", id)
	if err != nil {
		t.Fatal(err)
	}
	if info.Retention < 5*time.Minute {
		t.Errorf("retention %s is shorter than the slot", info.Retention)
	}

	rec := &queuetest.Recorder{}
	queuetest.Serve(t, rs, rec)
	rec.WaitFor(t, 1, 10*time.Second)
	queuetest.Eventually(t, 10*time.Second, "slot task completed", func() bool {
		i, err := insp.GetTaskInfo("default", id)
		return err == nil && i.State == asynq.TaskStateCompleted
	})
	if enq, err := b.Fire(ctx, &b.Entries[0], slot); enq || err != nil {
		t.Fatalf("late replica after the task ran: %v, %v", enq, err)
	}
	if enq, err := b.Fire(ctx, &b.Entries[0], slot.Add(5*time.Minute)); !enq || err != nil {
		t.Fatalf("next slot: %v, %v", enq, err)
	}
	if c := rec.Counts(); c[id] != 1 {
		t.Errorf("slot task ran %d times", c[id])
	}
}

func TestRunWithEmptyScheduleWaitsForCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&schedule.Scheduler{Log: zerolog.Nop()}).Run(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Run returned before cancel: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}
