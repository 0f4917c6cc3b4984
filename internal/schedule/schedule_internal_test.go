package schedule

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/platform/clock/clocktest"
)

func mustEntry(t *testing.T, spec string, missed Missed) *Entry {
	t.Helper()
	s := &Scheduler{Entries: []Entry{{Name: "e", Spec: spec, Missed: missed,
		Task: func(time.Time) *asynq.Task { return asynq.NewTask("e", nil) }}}}
	if err := s.Parse(); err != nil {
		t.Fatal(err)
	}
	return &s.Entries[0]
}

func at(s string) time.Time {
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestDue(t *testing.T) {
	t.Parallel()
	hourlySkip := mustEntry(t, "0 * * * *", MissedSkip)
	hourlyOnce := mustEntry(t, "0 * * * *", MissedFireOnce)
	for _, tc := range []struct {
		name   string
		e      *Entry
		cursor string
		now    string
		want   Decision
		slot   string
	}{
		{"nothing due", hourlySkip, "2026-01-01T10:00:00Z", "2026-01-01T10:59:59Z", Wait, ""},
		{"on time", hourlySkip, "2026-01-01T10:00:00Z", "2026-01-01T11:00:01Z", FireSlot, "2026-01-01T11:00:00Z"},
		{"within grace", hourlySkip, "2026-01-01T10:00:00Z", "2026-01-01T11:00:30Z", FireSlot, "2026-01-01T11:00:00Z"},
		{"missed, skip", hourlySkip, "2026-01-01T10:00:00Z", "2026-01-01T11:05:00Z", SkipSlot, "2026-01-01T11:00:00Z"},
		{"missed, fire once", hourlyOnce, "2026-01-01T10:00:00Z", "2026-01-01T11:05:00Z", FireSlot, "2026-01-01T11:00:00Z"},
		{"many missed fire only the latest", hourlyOnce, "2026-01-01T02:00:00Z", "2026-01-01T11:05:00Z", FireSlot, "2026-01-01T11:00:00Z"},
		{"many missed, skip", hourlySkip, "2026-01-01T02:00:00Z", "2026-01-01T11:05:00Z", SkipSlot, "2026-01-01T11:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, slot := Due(tc.e, at(tc.cursor), at(tc.now), 30*time.Second)
			if d != tc.want {
				t.Fatalf("decision %v, want %v", d, tc.want)
			}
			if tc.slot != "" && !slot.Equal(at(tc.slot)) {
				t.Fatalf("slot %s, want %s", slot, tc.slot)
			}
		})
	}
}

type memState struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (m *memState) Last(_ context.Context, e string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[e], nil
}

func (m *memState) Advance(_ context.Context, e string, slot time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if slot.After(m.last[e]) {
		m.last[e] = slot
	}
	return nil
}

// flaky fails its first fails enqueues, then records task IDs.
type flaky struct {
	mu    sync.Mutex
	fails int
	ids   []string
	fired chan string
}

func (f *flaky) EnqueueContext(_ context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return nil, errors.New("redis down")
	}
	for _, o := range opts {
		if o.Type() == asynq.TaskIDOpt {
			f.ids = append(f.ids, o.Value().(string))
			f.fired <- o.Value().(string)
		}
	}
	return &asynq.TaskInfo{}, nil
}

// After downtime, a fire-once entry fires its latest missed slot at start,
// retrying a failing enqueue within the slot; a skip entry only records it.
func TestRunAppliesMissedPolicyAndRetries(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(at("2026-03-04T12:20:00Z"))
	state := &memState{last: map[string]time.Time{
		"daily": at("2026-03-01T04:15:00Z"), "hourly": at("2026-03-04T09:00:00Z"),
	}}
	q := &flaky{fails: 2, fired: make(chan string, 4)}
	var skipped []string
	var smu sync.Mutex
	task := func(time.Time) *asynq.Task { return asynq.NewTask("x", nil) }
	s := &Scheduler{
		Entries: []Entry{
			{Name: "daily", Spec: "15 4 * * *", Task: task, Missed: MissedFireOnce},
			{Name: "hourly", Spec: "0 * * * *", Task: task, Missed: MissedSkip},
		},
		Queue: q, Log: zerolog.Nop(), State: state, Clock: clk,
		Skipped: func(e string, slot time.Time) {
			smu.Lock()
			skipped = append(skipped, SlotID(e, slot))
			smu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	// Two failed attempts, each followed by a backoff on the clock (200 ms,
	// then 400 ms) while the loop sleeps until the next hour.
	for _, backoff := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond} {
		clk.WaitSleepers(t, 2)
		select {
		case id := <-q.fired:
			t.Fatalf("fired %s before the backoff passed", id)
		default:
		}
		clk.Advance(backoff)
	}
	select {
	case id := <-q.fired:
		if id != "daily:2026-03-04T04:15:00Z" {
			t.Fatalf("fired %s", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("missed daily slot not fired")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	smu.Lock()
	defer smu.Unlock()
	if len(skipped) != 1 || skipped[0] != "hourly:2026-03-04T12:00:00Z" {
		t.Fatalf("skipped %v", skipped)
	}
	if l, _ := state.Last(ctx, "hourly"); !l.Equal(at("2026-03-04T12:00:00Z")) {
		t.Fatalf("hourly state %s", l)
	}
	if l, _ := state.Last(ctx, "daily"); !l.Equal(at("2026-03-04T04:15:00Z")) {
		t.Fatalf("daily state %s", l)
	}
	if len(q.ids) != 1 {
		t.Fatalf("enqueued %v", q.ids)
	}
}
