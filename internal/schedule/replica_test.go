package schedule_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/platform/clock/clocktest"
	"github.com/keelhq/keel/internal/platform/queuetest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/schedule"
)

// Two replicas on one Redis, for thirty consecutive slots of a per-minute
// entry (and six of a five-minute one), each woken somewhere within the
// grace period: every slot is enqueued exactly once, both replicas fire it,
// and no slot is missing.
func TestTwoReplicasFireEverySlotOnce(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	first := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	clk := clocktest.New(first.Add(-15 * time.Second))
	c := &tally{}
	entries := []schedule.Entry{entry("tick", "* * * * *"), entry("five", "*/5 * * * *")}
	a := startReplica(t, rs, clk, c, redisState(t, rs), entries)
	b := startReplica(t, rs, clk, c, redisState(t, rs), entries)
	clk.WaitSleepers(t, 2)

	const slots = 30
	want := map[string]counts{}
	for k := range slots {
		slot := first.Add(time.Duration(k) * time.Minute)
		clk.Set(slot.Add(time.Duration(k*7%29) * time.Second)) // up to 28 s late: on time
		want["tick"] = want["tick"].add(1, 1, 0)
		if slot.Minute()%5 == 0 {
			want["five"] = want["five"].add(1, 1, 0)
		}
		c.waitFor(t, want, slot)
		clk.WaitSleepers(t, 2)
	}
	a()
	b()
	c.waitFor(t, want, time.Time{})

	insp := queuetest.Inspector(t, rs)
	var tick, five []time.Time
	for k := range slots {
		slot := first.Add(time.Duration(k) * time.Minute)
		tick = append(tick, slot)
		if slot.Minute()%5 == 0 {
			five = append(five, slot)
		}
	}
	mustSlots(t, insp, "tick", tick)
	mustSlots(t, insp, "five", five)
	mustLast(t, rs, map[string]time.Time{"tick": tick[len(tick)-1], "five": five[len(five)-1]})
}

// Both replicas down for four hours, then restarted together from the same
// stale state: the fire-once entry enqueues its latest missed slot once (not
// the three before it), the skip entry records its missed slot and enqueues
// nothing until its next slot, which both fire on time again.
func TestReplicasAfterDowntime(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	clk := clocktest.New(time.Date(2026, 11, 26, 9, 16, 50, 0, time.UTC))
	c := &tally{}
	entries := []schedule.Entry{entry("tick", "* * * * *"), entry("hourly", "17 * * * *")}
	entries[1].Missed = schedule.MissedFireOnce
	a := startReplica(t, rs, clk, c, redisState(t, rs), entries)
	b := startReplica(t, rs, clk, c, redisState(t, rs), entries)
	clk.WaitSleepers(t, 2)
	want := map[string]counts{}
	step := func(to, slot time.Time, deltas map[string]counts) {
		t.Helper()
		clk.Set(to)
		for name, d := range deltas {
			want[name] = want[name].add(d.enqueued, d.duplicate, d.skipped)
		}
		c.waitFor(t, want, slot)
		clk.WaitSleepers(t, 2)
	}
	at := func(hm string, sec int) time.Time {
		v, err := time.Parse("2006-01-02T15:04Z", "2026-11-26T"+hm+"Z")
		if err != nil {
			t.Fatal(err)
		}
		return v.Add(time.Duration(sec) * time.Second)
	}
	step(at("09:17", 2), at("09:17", 0), map[string]counts{"tick": {1, 1, 0}, "hourly": {1, 1, 0}})
	step(at("09:18", 5), at("09:18", 0), map[string]counts{"tick": {1, 1, 0}})
	a()
	b()

	// 13:20:45: the tick slot of 13:20 is past grace; hourly missed 10:17,
	// 11:17, 12:17 and 13:17.
	clk.Set(at("13:20", 45))
	gate := &barrier{n: 2}
	a = startReplica(t, rs, clk, c, &lockstep{redisState(t, rs), gate}, entries)
	b = startReplica(t, rs, clk, c, &lockstep{redisState(t, rs), gate}, entries)
	want["hourly"] = want["hourly"].add(1, 1, 0)
	want["tick"] = want["tick"].add(0, 0, 2)
	c.waitFor(t, want, at("13:17", 0))
	clk.WaitSleepers(t, 2)
	step(at("13:21", 1), at("13:21", 0), map[string]counts{"tick": {1, 1, 0}})
	a()
	b()
	c.waitFor(t, want, time.Time{})

	insp := queuetest.Inspector(t, rs)
	mustSlots(t, insp, "tick", []time.Time{at("09:17", 0), at("09:18", 0), at("13:21", 0)})
	mustSlots(t, insp, "hourly", []time.Time{at("09:17", 0), at("13:17", 0)})
	mustLast(t, rs, map[string]time.Time{"tick": at("13:21", 0), "hourly": at("13:17", 0)})
}

// counts is what replicas reported for one entry.
type counts struct{ enqueued, duplicate, skipped int }

func (c counts) add(enqueued, duplicate, skipped int) counts {
	return counts{c.enqueued + enqueued, c.duplicate + duplicate, c.skipped + skipped}
}

// tally collects the Fired and Skipped reports of every replica; a failed
// enqueue fails the test, since Redis stays up.
type tally struct {
	mu     sync.Mutex
	counts map[string]counts
	failed []string
}

func (c *tally) fired(entry string, enqueued bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]counts{}
	}
	switch {
	case err != nil:
		c.failed = append(c.failed, fmt.Sprintf("%s: %v", entry, err))
	case enqueued:
		c.counts[entry] = c.counts[entry].add(1, 0, 0)
	default:
		c.counts[entry] = c.counts[entry].add(0, 1, 0)
	}
}

func (c *tally) skipped(entry string, _ time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]counts{}
	}
	c.counts[entry] = c.counts[entry].add(0, 0, 1)
}

// waitFor waits until the reports equal want (exactly), failing t after 10 s
// or at the first failed enqueue; slot names the step in the message.
func (c *tally) waitFor(t *testing.T, want map[string]counts, slot time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got, failed := maps.Clone(c.counts), slices.Clone(c.failed)
		c.mu.Unlock()
		if len(failed) > 0 {
			t.Fatalf("slot %s: enqueue failed: %s", slot.Format(time.RFC3339), strings.Join(failed, "; "))
		}
		if maps.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s: replicas reported %+v, want %+v", slot.Format(time.RFC3339), got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startReplica runs a scheduler of entries on rs's queue, with state and
// clk, reporting to c. The returned stop cancels it and waits for Run to
// return; it also runs when t ends.
func startReplica(t *testing.T, rs *redistest.Server, clk *clocktest.Fake, c *tally, state schedule.State, entries []schedule.Entry) (stop func()) {
	t.Helper()
	s := &schedule.Scheduler{Entries: slices.Clone(entries), Queue: queuetest.Client(t, rs), Log: zerolog.Nop(),
		State: state, Clock: clk, Fired: c.fired, Skipped: c.skipped}
	if err := s.Parse(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func redisState(t *testing.T, rs *redistest.Server) *schedule.RedisState {
	t.Helper()
	rdb := rs.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	return &schedule.RedisState{Client: rdb}
}

// barrier and lockstep make n replicas read their state together: none
// returns an entry's latest slot before all have read it, so all start from
// the same stale state, the case where only task IDs keep a slot from being
// enqueued twice.
type barrier struct {
	n       int
	mu      sync.Mutex
	arrived map[string]int
	all     map[string]chan struct{}
}

type lockstep struct {
	schedule.State
	b *barrier
}

func (l *lockstep) Last(ctx context.Context, entry string) (time.Time, error) {
	v, err := l.State.Last(ctx, entry)
	b := l.b
	b.mu.Lock()
	if b.all == nil {
		b.arrived, b.all = map[string]int{}, map[string]chan struct{}{}
	}
	if b.all[entry] == nil {
		b.all[entry] = make(chan struct{})
	}
	all := b.all[entry]
	if b.arrived[entry]++; b.arrived[entry] == b.n {
		close(all)
	}
	b.mu.Unlock()
	select {
	case <-all:
		return v, err
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// mustSlots fails t unless the pending tasks of entry are exactly want.
func mustSlots(t *testing.T, insp *asynq.Inspector, entry string, want []time.Time) {
	t.Helper()
	tasks, err := insp.ListPendingTasks("default", asynq.PageSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Time
	for _, task := range tasks {
		rest, ok := strings.CutPrefix(task.ID, entry+":")
		if !ok {
			continue
		}
		slot, err := time.Parse(time.RFC3339, rest)
		if err != nil {
			t.Fatalf("task ID %q is not a slot ID", task.ID)
		}
		if string(task.Payload) != rest {
			t.Errorf("task %s carries slot %q", task.ID, task.Payload)
		}
		got = append(got, slot)
	}
	slices.SortFunc(got, time.Time.Compare)
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("%s: enqueued slots %v, want %v", entry, got, want)
	}
}

// mustLast fails t unless the shared state records want for each entry.
func mustLast(t *testing.T, rs *redistest.Server, want map[string]time.Time) {
	t.Helper()
	st := redisState(t, rs)
	for name, w := range want {
		got, err := st.Last(context.Background(), name)
		if err != nil || !got.Equal(w) {
			t.Errorf("state of %s = %s, %v; want %s", name, got, err, w)
		}
	}
}
