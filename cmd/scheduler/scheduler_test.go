package main

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/workertest"
	"github.com/keelhq/keel/jobs/task"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// Two scheduler processes for three minutes on a per-minute entry
// (outbox:sweep): each minute's slot is enqueued exactly once, although
// both replicas fire it.
func TestTwoSchedulersEnqueueEachSlotOnce(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "scheduler")
	db := postgrestest.New(t)
	r := redistest.Start(t)
	env := []string{"DATABASE_URL=" + db.AppURL, "REDIS_URL=" + r.URL}
	a := workertest.Start(t, bin, env...)
	b := workertest.Start(t, bin, env...)
	start := time.Now()
	time.Sleep(3*time.Minute + 5*time.Second)

	enqueued, duplicates := 0, 0
	for _, p := range []*workertest.Proc{a, b} {
		body := scrape(t, p.Metrics)
		enqueued += counter(body, task.TypeOutboxSweep, "enqueued")
		duplicates += counter(body, task.TypeOutboxSweep, "duplicate")
	}
	a.Term(15 * time.Second)
	b.Term(15 * time.Second)

	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	pending, err := insp.ListPendingTasks(task.QueueLow, asynq.PageSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	var slots []time.Time
	for _, info := range pending {
		rest, ok := strings.CutPrefix(info.ID, task.TypeOutboxSweep+":")
		if !ok {
			continue
		}
		slot, err := time.Parse(time.RFC3339, rest)
		if err != nil {
			t.Fatalf("task ID %q is not a slot ID", info.ID)
		}
		slots = append(slots, slot)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].Before(slots[j]) })
	if len(slots) < 3 || len(slots) > 4 {
		t.Fatalf("%d slots enqueued in %s: %v", len(slots), time.Since(start).Round(time.Second), slots)
	}
	for i := 1; i < len(slots); i++ {
		if slots[i].Sub(slots[i-1]) != time.Minute {
			t.Fatalf("slots not one per minute: %v", slots)
		}
	}
	if enqueued != len(slots) {
		t.Fatalf("replicas report %d enqueued firings for %d slots", enqueued, len(slots))
	}
	if duplicates < len(slots)-1 {
		t.Fatalf("only %d duplicate firings: were both replicas firing?", duplicates)
	}
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func counter(body, entry, result string) int {
	re := regexp.MustCompile(`keel_scheduler_firings_total\{entry="` + regexp.QuoteMeta(entry) + `",result="` + result + `"\} (\d+)`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
