package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/proctest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/sentry/sentrytest"
	"github.com/keelhq/keel/internal/platform/workertest"
	"github.com/keelhq/keel/jobs/task"
)

func TestMain(m *testing.M) {
	code := postgrestest.Main(m)
	workertest.RemoveBinaries()
	os.Exit(code)
}

// clockRate speeds the binaries' clocks up (SCHEDULER_TEST_CLOCK_RATE, only
// with ENV=test): a per-minute slot every two seconds, its 30 s grace one
// real second. The schedule, the task IDs and Redis are the real ones.
const clockRate = 30

// Two scheduler processes, their clocks sped up alike, until five slots of
// the per-minute entry (outbox:sweep) passed: each slot is enqueued exactly
// once, fired by both replicas, and no slot is missing. The first and the
// last slot may be fired by one replica only: the replicas start and stop
// a few milliseconds apart.
func TestTwoSchedulersEnqueueEachSlotOnce(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "scheduler")
	db := postgrestest.New(t)
	r := redistest.Start(t)
	origin := time.Now().UTC()
	env := []string{"DATABASE_URL=" + db.AppURL, "REDIS_URL=" + r.URL,
		"SCHEDULER_TEST_CLOCK_RATE=" + strconv.Itoa(clockRate), "SCHEDULER_TEST_CLOCK_ORIGIN=" + origin.Format(time.RFC3339Nano)}
	replicas := []*workertest.Proc{workertest.Start(t, bin, env...), workertest.Start(t, bin, env...)}
	for _, p := range replicas {
		p.WaitStatus(t, p.Metrics+"/healthz", http.StatusOK, 10*time.Second)
	}

	const want = 5
	workertest.WaitFor(t, 60*time.Second, fmt.Sprintf("%d slots fired by both replicas", want), func() (bool, string) {
		enqueued, duplicates := 0, 0
		for _, p := range replicas {
			body := scrape(t, p.Metrics)
			enqueued += counter(body, task.TypeOutboxSweep, "enqueued")
			duplicates += counter(body, task.TypeOutboxSweep, "duplicate")
		}
		return enqueued >= want && duplicates >= want-1, fmt.Sprintf("%d enqueued and %d duplicate firings", enqueued, duplicates)
	})
	var wg sync.WaitGroup
	exits := make([]string, len(replicas))
	for i, p := range replicas {
		wg.Go(func() {
			if code, ok := p.Terminate(15 * time.Second); !ok || code != 0 {
				exits[i] = fmt.Sprintf("replica %d: exit code %d, exited within 15 s of SIGTERM: %t", i, code, ok)
			}
		})
	}
	wg.Wait()
	for _, e := range exits {
		if e != "" {
			t.Error(e)
		}
	}
	end := origin.Add(clockRate * time.Since(origin)) // the replicas' clock, now

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
	slices.SortFunc(slots, time.Time.Compare)
	if len(slots) < want || slots[0].Before(origin.Add(-30*time.Second)) || slots[len(slots)-1].After(end) {
		t.Fatalf("slots %v enqueued between %s and %s (replica clocks)", slots, origin, end)
	}
	for i := 1; i < len(slots); i++ {
		if slots[i].Sub(slots[i-1]) != time.Minute {
			t.Fatalf("slots not one per minute: %v", slots)
		}
	}

	// Every firing as each replica logged it: who enqueued each slot, and
	// that both replicas fired it.
	enqueued := map[time.Time]int{}
	fired := []map[time.Time]int{{}, {}}
	for i, p := range replicas {
		for _, f := range firings(t, p.Output()) {
			switch {
			case f.Entry != task.TypeOutboxSweep:
			case f.Message == "schedule skipped a missed slot":
				t.Errorf("replica %d skipped slot %s: it woke later than the grace period", i, f.Slot)
			case f.Message == "schedule fired":
				fired[i][f.Slot]++
				if f.Enqueued {
					enqueued[f.Slot]++
				}
			}
		}
	}
	if len(enqueued) != len(slots) {
		t.Errorf("replicas logged %d enqueued slots, Redis holds %d: %v", len(enqueued), len(slots), enqueued)
	}
	for i, slot := range slots {
		if enqueued[slot] != 1 {
			t.Errorf("slot %s enqueued %d times", slot, enqueued[slot])
		}
		if na, nb := fired[0][slot], fired[1][slot]; na > 1 || nb > 1 || (i > 0 && i < len(slots)-1 && (na != 1 || nb != 1)) {
			t.Errorf("slot %s fired %d times by one replica and %d by the other, want once by each", slot, na, nb)
		}
	}
}

// The sped-up clock is for tests: outside ENV=test the binary refuses to
// start, naming the variables.
func TestSchedulerRefusesTestClockOutsideTests(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "scheduler")
	code, out, _ := proctest.Run(t, 10*time.Second, bin, proctest.Env("ENV", "production",
		"DATABASE_URL", "postgres://app@127.0.0.1:1/keel", "REDIS_URL", "redis://127.0.0.1:1/0",
		"SCHEDULER_TEST_CLOCK_RATE", "30", "SCHEDULER_TEST_CLOCK_ORIGIN", time.Now().UTC().Format(time.RFC3339)))
	if code == 0 || !strings.Contains(out, "SCHEDULER_TEST_CLOCK_RATE is for tests only") ||
		!strings.Contains(out, "SCHEDULER_TEST_CLOCK_ORIGIN is for tests only") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// The scheduler's /metrics reads the backup jobs' last success from
// job_runs at each scrape: 0 before any, then the recorded finish time,
// which a restart keeps. A bad BACKUP_TAKE_SCHEDULE stops it at start.
func TestSchedulerExportsBackupLastSuccess(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "scheduler")
	db := postgrestest.New(t)
	r := redistest.Start(t)
	env := []string{"DATABASE_URL=" + db.AppURL, "REDIS_URL=" + r.URL, "BACKUP_TAKE_SCHEDULE=30 1 * * *"}
	p := workertest.Start(t, bin, env...)
	p.WaitStatus(t, p.Metrics+"/healthz", http.StatusOK, 10*time.Second)
	gauge := func(body, job string) string {
		m := regexp.MustCompile(`keel_backup_last_success_timestamp_seconds\{job="` + regexp.QuoteMeta(job) + `"\} (\S+)`).FindStringSubmatch(body)
		if m == nil {
			return "absent"
		}
		return m[1]
	}
	body := scrape(t, p.Metrics)
	if gauge(body, task.TypeBackupTake) != "0" || gauge(body, task.TypeBackupVerify) != "0" {
		t.Fatalf("before any backup run:\n%s", body)
	}
	if _, err := db.Owner.Exec(`INSERT INTO job_runs (id, job, task_id, status, started_at, finished_at) VALUES
		(gen_random_uuid(), 'backup:take', 't-1', 'ok', '2026-11-28T03:00:00Z', '2026-11-28T03:00:42Z'),
		(gen_random_uuid(), 'backup:verify', 't-2', 'failed', '2026-11-28T04:15:00Z', '2026-11-28T04:16:00Z')`); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 28, 3, 0, 42, 0, time.UTC).Unix()
	body = scrape(t, p.Metrics)
	if g, err := strconv.ParseFloat(gauge(body, task.TypeBackupTake), 64); err != nil || g != float64(want) {
		t.Fatalf("take gauge %s, want %d", gauge(body, task.TypeBackupTake), want)
	}
	if gauge(body, task.TypeBackupVerify) != "0" {
		t.Fatalf("a failed verify counted as a success:\n%s", body)
	}

	code, out, _ := proctest.Run(t, 10*time.Second, bin, proctest.Env("DATABASE_URL", db.AppURL, "REDIS_URL", r.URL,
		"BACKUP_TAKE_SCHEDULE", "every night"))
	if code == 0 || !strings.Contains(out, "BACKUP_TAKE_SCHEDULE") {
		t.Fatalf("bad schedule: exit %d:\n%s", code, out)
	}
}

// firing is a scheduler log line about a slot.
type firing struct {
	Message  string    `json:"message"`
	Entry    string    `json:"entry"`
	Slot     time.Time `json:"slot"`
	Enqueued bool      `json:"enqueued"`
}

// firings returns the slot lines of a replica's JSON log.
func firings(t *testing.T, out string) []firing {
	t.Helper()
	var fs []firing
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !json.Valid(line) {
			continue
		}
		var f firing
		if err := json.Unmarshal(line, &f); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		if f.Entry != "" && !f.Slot.IsZero() {
			fs = append(fs, f)
		}
	}
	return fs
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

// A slot that cannot be enqueued (Redis gone) until the next slot begins
// reaches Sentry once, tagged with its entry, the release and the
// environment, through the SDK's real HTTP transport to a local ingest;
// its retried attempts do not.
func TestLostSlotsReachSentry(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "scheduler")
	db := postgrestest.New(t)
	r := redistest.Start(t)
	ingest := sentrytest.Start(t)
	origin := time.Now().UTC()
	p := workertest.Start(t, bin, "DATABASE_URL="+db.AppURL, "REDIS_URL="+r.URL,
		"SENTRY_DSN="+ingest.DSN(), "RELEASE=keel-sched-r7",
		"SCHEDULER_TEST_CLOCK_RATE="+strconv.Itoa(clockRate), "SCHEDULER_TEST_CLOCK_ORIGIN="+origin.Format(time.RFC3339Nano))
	p.WaitStatus(t, p.Metrics+"/healthz", http.StatusOK, 10*time.Second)
	r.Stop()

	workertest.WaitFor(t, 30*time.Second, "two lost slots", func() (bool, string) {
		n := strings.Count(p.Output(), "schedule gave up on slot")
		return n >= 2, fmt.Sprintf("%d lost slots", n)
	})
	if code, ok := p.Terminate(15 * time.Second); !ok || code != 0 {
		t.Fatalf("scheduler: exit code %d, exited within 15 s of SIGTERM: %t", code, ok)
	}
	lost := 0
	for _, line := range strings.Split(p.Output(), "\n") {
		if strings.Contains(line, "schedule gave up on slot") && strings.Contains(line, `"entry":"`+task.TypeOutboxSweep+`"`) {
			lost++
		}
	}
	events := 0
	for _, env := range ingest.Envelopes() {
		if !strings.Contains(env, "schedule "+task.TypeOutboxSweep+": slot") {
			continue
		}
		events++
		for _, want := range []string{`"entry":"` + task.TypeOutboxSweep + `"`, `"environment":"test"`, `"release":"keel-sched-r7"`, `"server_name":"scheduler"`} {
			if !strings.Contains(env, want) {
				t.Errorf("Sentry event lacks %s:\n%.1500s", want, env)
			}
		}
	}
	if lost < 1 || events != lost {
		t.Fatalf("%d Sentry events for %d lost %s slots", events, lost, task.TypeOutboxSweep)
	}
}
