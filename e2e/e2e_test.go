// Package e2e tests the built binaries as an operator runs them: keelctl
// migrates a fresh database and provisions the application role; api,
// worker and scheduler start against it, a private Redis and Mailpit, serve
// health and metrics, move an email from the outbox to the mailbox, and stop
// cleanly on SIGTERM.
package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/mailtest"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/proctest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/sentry/sentrytest"
	"github.com/keelhq/keel/jobs/task"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keel-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if err := proctest.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// stack is a fresh, migrated database with its own application role, a
// private Redis and a Mailpit.
type stack struct {
	db    *postgrestest.Empty
	redis *redistest.Server
	mail  *mailtest.Server
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{db: postgrestest.NewEmpty(t), redis: redistest.Start(t), mail: mailtest.Start(t)}
	code, out, _ := proctest.Run(t, time.Minute, bin("keelctl"), s.ctlEnv(), "migrate", "up")
	if code != 0 || !strings.Contains(out, "application role ready") {
		t.Fatalf("keelctl migrate up: exit %d\n%s", code, out)
	}
	return s
}

// env is what every binary gets: the application role, never the owner.
func (s *stack) env(kv ...string) []string {
	base := []string{
		"ENV", "test", "LOG_FORMAT", "json", "LOG_LEVEL", "info",
		"DATABASE_URL", s.db.AppURL,
		"REDIS_URL", s.redis.URL,
		"SMTP_URL", s.mail.SMTPURL,
		"MAIL_FROM", "Keel <no-reply@keel.test>",
		"APP_BASE_URL", "https://app.keel.test",
		"OUTBOX_RELAY_INTERVAL", "100ms",
		"SHUTDOWN_TIMEOUT", "5s",
		"JWT_SIGNING_KEY", testJWTKey,
		"TOTP_ENCRYPTION_KEY", testTOTPKey,
	}
	return proctest.Env(append(base, kv...)...)
}

func (s *stack) ctlEnv(kv ...string) []string {
	return s.env(append([]string{"DATABASE_OWNER_URL", s.db.OwnerURL}, kv...)...)
}

// The api's identity secrets: base64 of 32 bytes each, test-only.
const (
	testJWTKey  = "a2VlbC1lMmUtand0LXNpZ25pbmcta2V5LTMyYnl0ZXM"
	testTOTPKey = "a2VlbC1lMmUtdG90cC1lbmNyeXB0aW9uLWtleS0zMmI"
)

// waitLinkStored waits until the hash of a mailed token is committed: the
// worker stores it in the transaction that sends the email, which commits
// just after the SMTP server accepted the message, so a test that reads
// Mailpit at once can be a few milliseconds early.
func (s *stack) waitLinkStored(t *testing.T, token string) {
	t.Helper()
	db := sqlx.MustOpen("postgres", s.db.OwnerURL)
	defer db.Close()
	sum := sha256.Sum256([]byte(token))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var stored bool
		if err := db.Get(&stored, `SELECT EXISTS (SELECT 1 FROM email_tokens WHERE token_hash = $1)
			OR EXISTS (SELECT 1 FROM invitations WHERE token_hash = $1)`, sum[:]); err != nil {
			t.Fatal(err)
		}
		if stored {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a mailed link is not stored")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string { return "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t)) }

type service struct {
	proc    *proctest.Proc
	base    string // the api's public port; METRICS_ADDR for the others
	metrics string // METRICS_ADDR
}

// startServices starts api, worker and scheduler with free ports: the api
// gets a public HTTP_ADDR and its own METRICS_ADDR.
func startServices(t *testing.T, s *stack, kv ...string) map[string]*service {
	t.Helper()
	services := map[string]*service{}
	for _, name := range []string{"api", "worker", "scheduler"} {
		// A port picked free can be taken by a parallel test before the
		// binary binds it: such a start is tried again on new ports.
		for try := 1; ; try++ {
			addr, metrics := freeAddr(t), freeAddr(t)
			if name != "api" {
				addr = metrics
			}
			p := proctest.Start(t, bin(name), s.env(append([]string{"HTTP_ADDR", addr, "METRICS_ADDR", metrics}, kv...)...))
			_, err := p.Await("http://"+addr+"/readyz", 200, 15*time.Second)
			if err != nil && try < 3 && strings.Contains(p.Output(), "address already in use") {
				p.Kill()
				continue
			}
			services[name] = &service{proc: p, base: "http://" + addr, metrics: "http://" + metrics}
			break
		}
	}
	return services
}

func TestBinariesEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	services := startServices(t, s)
	for name, svc := range services {
		ready := svc.proc.WaitStatus(t, svc.base+"/readyz", 200, 15*time.Second)
		t.Logf("%s: start to /readyz 200 in %s", name, ready.Round(time.Millisecond))
		if code, body := proctest.Get(svc.base + "/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
			t.Errorf("%s /healthz: %d %s", name, code, body)
		}
		code, body := proctest.Get(svc.base + "/readyz")
		if code != 200 || !strings.Contains(body, `"name":"postgres","ok":true`) || !strings.Contains(body, `"name":"redis","ok":true`) {
			t.Errorf("%s /readyz: %d %s", name, code, body)
		}
		if code, body := proctest.Get(svc.metrics + "/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
			t.Errorf("%s /metrics: %d %.200s", name, code, body)
		}
	}
	// A worker exports its task types' failure series at zero from the
	// start, so alerts on them work before the first failure.
	if _, body := proctest.Get(services["worker"].metrics + "/metrics"); !strings.Contains(body, `keel_tasks_archived_total{queue="critical",type="stripe:event"} 0`) {
		t.Errorf("worker /metrics has no zero series for stripe:event's dead tasks: %.300s", body)
	}
	// The api's public port serves no metrics; its metrics listener does.
	if code, body := proctest.Get(services["api"].base + "/metrics"); code != 404 || strings.Contains(body, "go_goroutines") {
		t.Errorf("api public port /metrics: %d %.200s", code, body)
	}
	time.Sleep(time.Second)
	for name, svc := range services {
		if rss, err := svc.proc.RSSKB(); err == nil {
			t.Logf("%s: idle RSS %d kB", name, rss)
		}
	}
	if _, body := proctest.Get(services["api"].metrics + "/metrics"); !strings.Contains(body, `keel_http_requests_total{method="GET",route="/healthz",status="200"} 1`) {
		t.Errorf("api metrics lack the /healthz request:\n%s", grep(body, "keel_http"))
	}
	if code, body := proctest.Get(services["api"].base + "/api/v1/openapi.json"); code != 200 || !strings.Contains(body, `"openapi": "3.1.0"`) {
		t.Errorf("openapi.json: %d %.200s", code, body)
	}

	// A feature's write: the outbox row goes in over the application role,
	// the worker relays and sends it.
	id := sendWelcome(t, s.db.AppURL, "grace@example.com", "Grace")
	m := s.mail.WaitFor(t, "grace@example.com", 20*time.Second)
	if m.Subject != "Welcome to Keel" || !strings.Contains(m.Text, "Hello Grace") || !strings.Contains(m.HTML, "Hello Grace") {
		t.Errorf("mail: %q\n%s", m.Subject, m.Text)
	}
	owner := sqlx.MustOpen(postgres.DriverName, s.db.OwnerURL)
	defer owner.Close()
	var dispatched bool
	if err := owner.Get(&dispatched, `SELECT dispatched_at IS NOT NULL FROM outbox WHERE id = $1`, id); err != nil || !dispatched {
		t.Errorf("outbox row dispatched=%v (%v)", dispatched, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	want := `keel_tasks_processed_total{queue="critical",type="email:account"} 1`
	for {
		_, body := proctest.Get(services["worker"].metrics + "/metrics")
		if strings.Contains(body, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("worker metrics lack %q:\n%s", want, grep(body, "keel_"))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Outages: every binary's /readyz turns 503 within 2 s, naming what
	// failed, and 200 within 5 s of its return, without a restart; then the
	// pipeline still delivers.
	s.redis.Stop()
	waitReadiness(t, services, 503, "redis", 2*time.Second)
	s.redis.Restart()
	waitReadiness(t, services, 200, "", 5*time.Second)

	admin := sqlx.MustOpen(postgres.DriverName, postgrestest.URL("postgres", "", ""))
	defer admin.Close()
	admin.MustExec(`ALTER DATABASE ` + s.db.Name + ` ALLOW_CONNECTIONS false`)
	admin.MustExec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, s.db.Name)
	waitReadiness(t, services, 503, "postgres", 2*time.Second)
	admin.MustExec(`ALTER DATABASE ` + s.db.Name + ` ALLOW_CONNECTIONS true`)
	waitReadiness(t, services, 200, "", 5*time.Second)

	sendWelcome(t, s.db.AppURL, "alan@example.com", "Alan")
	s.mail.WaitFor(t, "alan@example.com", 20*time.Second)

	for name, svc := range services {
		code, ok := svc.proc.Terminate(10 * time.Second)
		if !ok || code != 0 {
			t.Errorf("%s after SIGTERM: exited=%v code=%d\n%s", name, ok, code, svc.proc.Output())
		}
		if strings.Contains(svc.proc.Output(), "panic") {
			t.Errorf("%s logged a panic:\n%s", name, svc.proc.Output())
		}
	}
}

// sendWelcome adds a welcome email to the outbox.
func sendWelcome(t *testing.T, appURL, to, name string) uuid.UUID {
	t.Helper()
	return addEmail(t, appURL, task.EmailPayload{To: to, Template: "welcome", Data: map[string]string{"name": name}})
}

// addEmail adds an account email (email:account) to the outbox the way a
// feature does: in a transaction of the application role.
func addEmail(t *testing.T, appURL string, p task.EmailPayload) uuid.UUID {
	t.Helper()
	app, err := postgres.Open(appURL, postgres.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	mail, err := task.NewAccountEmailTask(p)
	if err != nil {
		t.Fatal(err)
	}
	return mustAddTask(t, app, mail)
}

// mustAddTask commits m to the outbox through db and returns its task ID.
func mustAddTask(t *testing.T, db *sqlx.DB, m outbox.Task) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	err := postgres.InTx(context.Background(), db, uuid.Nil, func(tx *sqlx.Tx) error {
		var err error
		id, err = outbox.Add(context.Background(), tx, m)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitReadiness polls every service's /readyz at once until each answers
// want (and, for 503, names failing), failing t when one takes longer than
// within.
func waitReadiness(t *testing.T, services map[string]*service, want int, failing string, within time.Duration) {
	t.Helper()
	start := time.Now()
	errs := make(chan error, len(services))
	for name, svc := range services {
		go func() {
			for {
				code, body := proctest.Get(svc.base + "/readyz")
				if code == want && (failing == "" || strings.Contains(body, `"name":"`+failing+`","ok":false`)) {
					t.Logf("%s /readyz %d after %s", name, want, time.Since(start).Round(time.Millisecond))
					errs <- nil
					return
				}
				if time.Since(start) > within {
					errs <- fmt.Errorf("%s /readyz: %d %s; want %d within %s", name, code, body, want, within)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	for range services {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func grep(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A binary started with a missing or malformed variable exits at once,
// naming it, instead of running half-configured.
func TestBadConfigExitsFast(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"DATABASE_URL":        "postgres://app:pw@127.0.0.1:5432/keel?sslmode=disable",
		"DATABASE_OWNER_URL":  "postgres://owner:pw@127.0.0.1:5432/keel?sslmode=disable",
		"REDIS_URL":           "redis://127.0.0.1:6379/0",
		"JWT_SIGNING_KEY":     testJWTKey,
		"TOTP_ENCRYPTION_KEY": testTOTPKey,
	}
	cases := []struct {
		name    string
		args    []string
		key     string
		value   string // "" unsets
		wantVar string
	}{
		{"api", nil, "DATABASE_URL", "", "DATABASE_URL"},
		{"api", nil, "REDIS_URL", "notaurl", "REDIS_URL"},
		{"api", nil, "JWT_SIGNING_KEY", "", "JWT_SIGNING_KEY"},
		{"api", nil, "TOTP_ENCRYPTION_KEY", "dG9vIHNob3J0", "TOTP_ENCRYPTION_KEY"},
		{"worker", nil, "DATABASE_URL", "", "DATABASE_URL"},
		{"worker", nil, "REDIS_URL", "notaurl", "REDIS_URL"},
		{"scheduler", nil, "DATABASE_URL", "", "DATABASE_URL"},
		{"scheduler", nil, "REDIS_URL", "notaurl", "REDIS_URL"},
		{"keelctl", []string{"doctor"}, "DATABASE_URL", "", "DATABASE_URL"},
		{"keelctl", []string{"doctor"}, "REDIS_URL", "notaurl", "REDIS_URL"},
		{"keelctl", []string{"migrate", "up"}, "DATABASE_URL", "", "DATABASE_URL"},
		{"keelctl", []string{"migrate", "status"}, "DATABASE_OWNER_URL", "", "DATABASE_OWNER_URL"},
		// The queue UI's old shared token is refused, not silently ignored;
		// the admin role must be its own; keelctl admin needs its URL.
		{"api", nil, "ADMIN_QUEUES_TOKEN", "an-old-queues-token-of-32-characters", "ADMIN_QUEUES_TOKEN"},
		{"api", nil, "ADMIN_DATABASE_URL", "postgres://app:pw@127.0.0.1:5432/keel?sslmode=disable", "ADMIN_DATABASE_URL"},
		{"keelctl", []string{"admin", "grant", "ada@example.com"}, "ADMIN_DATABASE_URL", "", "ADMIN_DATABASE_URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" "+strings.Join(tc.args, " ")+" "+tc.key+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			var kv []string
			for k, v := range good {
				if k == tc.key {
					if tc.value == "" {
						continue
					}
					v = tc.value
				}
				kv = append(kv, k, v)
			}
			if _, ok := good[tc.key]; !ok && tc.value != "" {
				kv = append(kv, tc.key, tc.value)
			}
			code, out, took := proctest.Run(t, 10*time.Second, bin(tc.name), proctest.Env(kv...), tc.args...)
			if code == 0 {
				t.Fatalf("exit 0:\n%s", out)
			}
			if !strings.Contains(out, tc.wantVar) {
				t.Errorf("output does not name %s:\n%s", tc.wantVar, out)
			}
			if strings.Contains(out, ":pw@") {
				t.Errorf("output shows a password:\n%s", out)
			}
			t.Logf("exit %d after %s", code, took.Round(time.Millisecond))
			if took > 2*time.Second {
				t.Errorf("took %s to refuse; the bound is 2 s", took)
			}
		})
	}
}

var doctorLine = regexp.MustCompile(`^(ok  |FAIL) (\S+)\s+(.*)$`)

func doctor(t *testing.T, env []string) (int, map[string]string, string) {
	t.Helper()
	code, out, _ := proctest.Run(t, 30*time.Second, bin("keelctl"), env, "doctor")
	res := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if m := doctorLine.FindStringSubmatch(l); m != nil {
			res[m[2]] = strings.TrimSpace(m[1])
		}
	}
	return code, res, out
}

func TestKeelctl(t *testing.T) {
	t.Parallel()
	s := newStack(t)

	code, res, out := doctor(t, s.ctlEnv())
	if code != 0 || len(res) != 4 || res["postgres"] != "ok" || res["migrations"] != "ok" || res["redis"] != "ok" || res["smtp"] != "ok" {
		t.Errorf("doctor, all up: exit %d %v\n%s", code, res, out)
	}
	if strings.Contains(out, s.db.AppPassword) {
		t.Errorf("doctor prints the password:\n%s", out)
	}

	// Connected as the owner (a superuser here), RLS would not bind.
	code, res, out = doctor(t, s.ctlEnv("DATABASE_URL", s.db.OwnerURL))
	if code == 0 || res["postgres"] != "FAIL" || !strings.Contains(out, "Row Level Security") {
		t.Errorf("doctor as owner: exit %d %v\n%s", code, res, out)
	}

	code, out, _ = proctest.Run(t, 30*time.Second, bin("keelctl"), s.ctlEnv(), "migrate", "status")
	if code != 0 || !strings.Contains(out, "applied") || strings.Contains(out, "pending") || !strings.Contains(out, "00001_outbox.sql") {
		t.Errorf("migrate status: exit %d\n%s", code, out)
	}

	code, out, _ = proctest.Run(t, 30*time.Second, bin("keelctl"), s.ctlEnv(), "migrate", "redo")
	if code != 0 || !strings.Contains(out, "OK   down") || !strings.Contains(out, "OK   up") {
		t.Errorf("migrate redo: exit %d\n%s", code, out)
	}
	if code, res, out = doctor(t, s.ctlEnv()); code != 0 {
		t.Errorf("doctor after redo (grants restored?): exit %d %v\n%s", code, res, out)
	}

	code, out, _ = proctest.Run(t, 30*time.Second, bin("keelctl"), s.ctlEnv(), "migrate", "down")
	if code != 0 {
		t.Fatalf("migrate down: exit %d\n%s", code, out)
	}
	code, res, out = doctor(t, s.ctlEnv())
	if code == 0 || res["migrations"] != "FAIL" || !strings.Contains(out, "keelctl migrate up") {
		t.Errorf("doctor behind on migrations: exit %d %v\n%s", code, res, out)
	}
	code, out, _ = proctest.Run(t, 30*time.Second, bin("keelctl"), s.ctlEnv(), "migrate", "up")
	if code != 0 {
		t.Fatalf("migrate up again: exit %d\n%s", code, out)
	}

	s.redis.Stop()
	code, res, out = doctor(t, s.ctlEnv("SMTP_URL", "smtp://127.0.0.1:"+strconv.Itoa(redistest.FreePort(t))))
	if code == 0 || res["redis"] != "FAIL" || res["smtp"] != "FAIL" || res["postgres"] != "ok" || len(strings.Split(strings.TrimSpace(out), "\n")) < 4 {
		t.Errorf("doctor with Redis and SMTP down: exit %d %v\n%s", code, res, out)
	}

	for _, args := range [][]string{{"frobnicate"}, {"migrate"}, {"migrate", "sideways"}} {
		code, out, _ := proctest.Run(t, 10*time.Second, bin("keelctl"), s.ctlEnv(), args...)
		if code != 2 || !strings.Contains(out, "usage: keelctl") {
			t.Errorf("keelctl %v: exit %d\n%s", args, code, out)
		}
	}
	if code, out, _ := proctest.Run(t, 10*time.Second, bin("keelctl"), proctest.Env(), "help"); code != 0 || !strings.Contains(out, "migrate up") {
		t.Errorf("keelctl help: exit %d\n%s", code, out)
	}
}

// Binaries may start before PostgreSQL and Redis answer (compose, a cold
// cluster): they serve /healthz, report 503 on /readyz, turn ready when the
// stores come up, and stop cleanly on SIGTERM even while a store is down.
func TestBinariesStartBeforeTheirStores(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	admin := sqlx.MustOpen(postgres.DriverName, postgrestest.URL("postgres", "", ""))
	defer admin.Close()
	admin.MustExec(`ALTER DATABASE ` + s.db.Name + ` ALLOW_CONNECTIONS false`)
	t.Cleanup(func() { _, _ = admin.Exec(`ALTER DATABASE ` + s.db.Name + ` ALLOW_CONNECTIONS true`) })
	s.redis.Stop()

	services := startServices(t, s)
	for _, svc := range services {
		svc.proc.WaitStatus(t, svc.base+"/healthz", 200, 10*time.Second)
	}
	waitReadiness(t, services, 503, "postgres", 2*time.Second)
	waitReadiness(t, services, 503, "redis", 2*time.Second)

	admin.MustExec(`ALTER DATABASE ` + s.db.Name + ` ALLOW_CONNECTIONS true`)
	s.redis.Restart()
	waitReadiness(t, services, 200, "", 5*time.Second)
	sendWelcome(t, s.db.AppURL, "edsger@example.com", "Edsger")
	s.mail.WaitFor(t, "edsger@example.com", 20*time.Second)

	s.redis.Stop()
	waitReadiness(t, services, 503, "redis", 2*time.Second)
	for name, svc := range services {
		code, ok := svc.proc.Terminate(10 * time.Second)
		if !ok || code != 0 {
			t.Errorf("%s after SIGTERM with Redis down: exited=%v code=%d\n%s", name, ok, code, svc.proc.Output())
		}
	}
}

// With SENTRY_DSN set, the worker reports a task's final failure, tagged
// with its type.
func TestWorkerReportsFinalFailuresToSentry(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ingest := sentrytest.Start(t)
	dsn := ingest.DSN()

	addr := freeAddr(t)
	w := proctest.Start(t, bin("worker"), s.env("METRICS_ADDR", addr, "SENTRY_DSN", dsn, "RELEASE", "e2e-1"))
	w.WaitStatus(t, "http://"+addr+"/readyz", 200, 15*time.Second)

	addEmail(t, s.db.AppURL, task.EmailPayload{To: "x@example.com", Template: "no-such-template"})
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := ingest.Events()
		if strings.Contains(got, "no-such-template") {
			for _, want := range []string{`"task_type":"email:account"`, `"release":"e2e-1"`, `"environment":"test"`} {
				if !strings.Contains(got, want) {
					t.Errorf("event lacks %s:\n%.1500s", want, got)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Sentry event for the failed task; got %.500s\nworker:\n%s", got, w.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, ok := w.Terminate(10 * time.Second); !ok || code != 0 {
		t.Errorf("worker after SIGTERM: %v %d", ok, code)
	}
}
