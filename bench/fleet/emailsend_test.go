// Package fleet benchmarks the worker fleet end to end; the benchmarks start
// the real binaries against real PostgreSQL, Redis and Mailpit.
package fleet

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/mailtest"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/workertest"
	"github.com/keelhq/keel/jobs/task"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// BenchmarkEmailSendBurst commits b.N email tasks to the outbox at once (in
// transactions of 100) and measures until Mailpit has accepted them all:
// outbox insert → relay → Redis → worker → SMTP. Reports messages per second
// and the latency percentiles of the burst (which include queueing). The
// tasks are account mail (email:account), which acts for no organization, so
// the per-organization cap does not apply.
//
//	go test ./bench/fleet -run '^$' -bench EmailSendBurst -benchtime 2000x
func BenchmarkEmailSendBurst(b *testing.B) {
	run(b, b.N, 0, false)
}

// BenchmarkEmailLinkBurst is BenchmarkEmailSendBurst with reset emails:
// each task names an email_tokens row made as the API makes it (no token),
// and the worker locks the row, mints the token, stores its hash and mails
// the link in the transaction that records the send. The difference from
// BenchmarkEmailSendBurst is the cost of minting links at send time.
//
//	go test ./bench/fleet -run '^$' -bench 'Email(Send|Link)Burst' -benchtime 2000x
func BenchmarkEmailLinkBurst(b *testing.B) {
	run(b, b.N, 0, true)
}

// BenchmarkEmailSendPaced offers b.N emails at 50 per second, below
// capacity, so the latencies are the pipeline's own, not a backlog's.
//
//	go test ./bench/fleet -run '^$' -bench EmailSendPaced -benchtime 500x
func BenchmarkEmailSendPaced(b *testing.B) {
	run(b, b.N, 50, false)
}

// run offers n emails (perSecond of them a second, 0: all at once); link
// makes them reset emails whose link the worker mints.
func run(b *testing.B, n int, perSecond int, link bool) {
	bin := workertest.Binary(b, "worker")
	db := postgrestest.New(b)
	r := redistest.Start(b)
	mp := mailtest.Start(b)
	workertest.Start(b, bin, "DATABASE_URL="+db.AppURL, "REDIS_URL="+r.URL, "SMTP_URL="+mp.SMTPURL,
		"WORKER_CONCURRENCY=20", "LOG_LEVEL=warn")
	// Warm up: the first task pays for connections.
	warm := mustTask(b, "warmup@bench.keel.test")
	workertest.AddTasks(b, db.App, []outbox.Task{warm}, 1)
	mp.WaitFor(b, "warmup@bench.keel.test", 30*time.Second)

	sent := make(map[string]time.Time, n)
	tasks := make([]outbox.Task, n)
	var links map[string]uuid.UUID
	if link {
		links = mustLinks(b, db, n)
	}
	for i := range tasks {
		to := fmt.Sprintf("user%d@bench.keel.test", i)
		if link {
			tasks[i] = mustLinkTask(b, to, links[to])
		} else {
			tasks[i] = mustTask(b, to)
		}
	}
	b.ResetTimer()
	start := time.Now()
	batch := 100
	if perSecond > 0 {
		batch = 1
	}
	for i := 0; i < n; i += batch {
		end := min(i+batch, n)
		if perSecond > 0 {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(perSecond))); d > 0 {
				time.Sleep(d)
			}
		}
		workertest.AddTasks(b, db.App, tasks[i:end], batch)
		now := time.Now()
		for j := i; j < end; j++ {
			sent[fmt.Sprintf("user%d@bench.keel.test", j)] = now
		}
	}
	var got map[string]time.Time
	deadline := time.Now().Add(5*time.Minute + time.Duration(n)*10*time.Millisecond)
	for {
		var err error
		got, err = received(mp.APIURL)
		if err == nil && len(got) >= n+1 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d emails arrived (%v)", len(got)-1, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var last time.Time
	lat := make([]time.Duration, 0, n)
	for to, at := range sent {
		arr, ok := got[to]
		if !ok {
			b.Fatalf("no email to %s", to)
		}
		if arr.After(last) {
			last = arr
		}
		lat = append(lat, max(0, arr.Sub(at)))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Milliseconds()) }
	b.ReportMetric(float64(n)/last.Sub(start).Seconds(), "emails/s")
	b.ReportMetric(pct(0.5), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(pct(1), "max_ms")
}

func mustTask(b *testing.B, to string) outbox.Task {
	t, err := task.NewAccountEmailTask(task.EmailPayload{To: to, Template: "welcome", Data: map[string]string{"name": "Bench"}})
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// mustLinks makes n users user<i>@bench.keel.test, each with a live reset
// link row not minted yet, and returns the rows' IDs by address.
func mustLinks(b *testing.B, db *postgrestest.DB, n int) map[string]uuid.UUID {
	db.Owner.MustExec(`INSERT INTO users (id, email, name, password_hash)
		SELECT gen_random_uuid(), 'user' || i || '@bench.keel.test', 'Bench', 'x' FROM generate_series(0, $1 - 1) i`, n)
	db.Owner.MustExec(`INSERT INTO email_tokens (id, user_id, purpose, email, token_hash, expires_at)
		SELECT gen_random_uuid(), id, 'reset_password', email, NULL, now() + interval '1 hour' FROM users WHERE email LIKE 'user%@bench.keel.test'`)
	var rows []struct {
		ID    uuid.UUID `db:"id"`
		Email string    `db:"email"`
	}
	if err := db.Owner.Select(&rows, `SELECT id, email FROM email_tokens`); err != nil {
		b.Fatal(err)
	}
	out := make(map[string]uuid.UUID, len(rows))
	for _, r := range rows {
		out[r.Email] = r.ID
	}
	return out
}

func mustLinkTask(b *testing.B, to string, id uuid.UUID) outbox.Task {
	t, err := task.NewAccountEmailTask(task.EmailPayload{To: to, Template: "reset_password", TokenID: &id,
		Data: map[string]string{"name": "Bench", "minutes": "60"}})
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// received lists every message Mailpit accepted with the time it did.
func received(api string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	for start := 0; ; start += 1000 {
		resp, err := http.Get(fmt.Sprintf("%s/api/v1/messages?start=%d&limit=1000", api, start))
		if err != nil {
			return out, err
		}
		var body struct {
			Total    int `json:"total"`
			Messages []struct {
				To      []struct{ Address string } `json:"To"`
				Created time.Time                  `json:"Created"`
			} `json:"messages"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			return out, err
		}
		for _, m := range body.Messages {
			if len(m.To) > 0 {
				out[m.To[0].Address] = m.Created
			}
		}
		if start+1000 >= body.Total {
			return out, nil
		}
	}
}
