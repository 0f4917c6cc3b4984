package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/app"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/health"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/internal/httpapi/apitest"
	"github.com/keelhq/keel/internal/idempotency"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/mail"
	"github.com/keelhq/keel/internal/platform/mailtest"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/internal/platform/queueui"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/resource"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

const baseURL = "https://app.keel.test"

// clock is a settable time source for TOTP steps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is a running API with its real dependencies: a cloned PostgreSQL
// database (the app role under RLS), a private Redis, and a private Mailpit
// that the outbox relay and an in-process email:send worker deliver to.
type env struct {
	t       testing.TB
	h       http.Handler
	db      *postgrestest.DB
	redis   *redistest.Server
	mail    *mailtest.Server
	auth    *auth.Service
	orgs    *org.Service
	files   *file.Service
	clock   *clock
	noCheck bool // skip OpenAPI checks (fuzzing sends what the document forbids)

	// resources is the API's resource service (the purge job's too).
	resources *resource.Service
	keys      *idempotency.Service
	// admin is the platform admin's service (its pool is db.Platform).
	admin *admin.Service
	// opsQueues is a platform admin's queue UI session, made once.
	opsQueues *http.Cookie
}

type envOpts struct {
	cookie bool
	noMail bool
	params *auth.PasswordParams
	// limits are the hashing bound and per-IP budgets; zero fields take
	// the defaults.
	limits app.Limits
	// trustedProxies is TRUSTED_PROXIES.
	trustedProxies []string
	// queuesUI mounts the queue monitor at /admin/queues (platform admins' session cookie).
	queuesUI bool
	// mailArgs are extra Mailpit flags (--smtp-allowed-recipients makes it
	// refuse mail for good).
	mailArgs []string
	// plans replaces the embedded plan catalog (its default plan's limits
	// apply to every organization).
	plans *plan.Catalog
	// storage is the files' bucket (file_flow_test.go); nil: files off.
	storage file.Objects
	// stripe is the Stripe client (a stripetest server's); nil: billing
	// calls answer 503.
	stripe *client.API
	// tokenClock drives access tokens' expiry by the env's clock too (off:
	// they expire by real time, so tests may move the clock by days).
	tokenClock bool
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	db := postgrestest.New(t)
	rs := redistest.Start(t)
	rdb := rs.Client()
	t.Cleanup(func() { rdb.Close() })
	ck := &clock{t: time.Now()}
	params := auth.OWASPParams
	if o.params != nil {
		params = *o.params
	}
	e := &env{t: t, db: db, redis: rs, clock: ck}
	hd := httpapi.Deps{Log: zerolog.Nop(), Health: &health.Checker{}, RefreshCookie: o.cookie, CORSAllowedOrigins: []string{"https://spa.keel.test"},
		TrustedProxies: o.trustedProxies}
	if o.queuesUI {
		mon, err := queueui.NewMonitor(asynq.RedisClientOpt{Addr: fmt.Sprintf("127.0.0.1:%d", rs.Port)}, httpapi.QueuesPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mon.Close() })
		if err := queueui.RegisterQueues(context.Background(), rdb, task.Queues); err != nil {
			t.Fatal(err)
		}
		hd.QueuesUI = mon
	}
	var tokenNow func() time.Time
	if o.tokenClock {
		tokenNow = ck.Now
	}
	api, err := app.NewAPI(app.APIDeps{DB: db.App, AdminDB: db.Platform, Redis: rdb, BaseURL: baseURL, Params: params, Now: ck.Now, TokenNow: tokenNow, Limits: o.limits, Plans: o.plans,
		Keys:    app.Keys{JWTSigning: bytes.Repeat([]byte("k"), 32), TOTPEncryption: bytes.Repeat([]byte("t"), 32)},
		Storage: o.storage, Stripe: o.stripe, HTTP: hd})
	if err != nil {
		t.Fatal(err)
	}
	e.h, e.auth, e.orgs = api.Handler, api.Auth, api.Orgs
	e.admin = api.Admin
	e.resources = api.Resources
	e.files = api.Files
	e.keys = api.Idempotency
	if !o.noMail {
		e.startMail(o.mailArgs...)
	}
	return e
}

// startMail runs the outbox relay and an Asynq server with the email:send
// handler, so queued emails really reach Mailpit over SMTP; tasks that fail
// for good are mirrored to dead_tasks, as the worker does. mailArgs are extra
// Mailpit flags.
func (e *env) startMail(mailArgs ...string) {
	e.mail = mailtest.Start(e.t, mailArgs...)
	runWorker(e.t, e.db.App, e.redis.Port, e.mail.SMTPURL, workerConfig{concurrency: 2, relayIdle: 20 * time.Millisecond, relayLoops: 1},
		jobs.Deps{Files: e.files})
}

// workerConfig is how runWorker's relay and server run.
type workerConfig struct {
	concurrency int
	relayIdle   time.Duration
	relayLoops  int
	// fast polls every 10 ms and retries after 50 ms (doubling to a
	// second), for tests that wait on many tasks and their retries.
	fast bool
}

// runWorker runs, until t ends, the outbox relay and an Asynq server with
// every job handler on the Redis at port, as cmd/worker does: emails go
// over SMTP to smtpURL, and tasks that fail for good are mirrored to
// dead_tasks. deps gives the handlers' optional dependencies (Files,
// Billing); the rest is filled here.
func runWorker(t testing.TB, app *sqlx.DB, port int, smtpURL string, c workerConfig, deps jobs.Deps) {
	t.Helper()
	opt := asynq.RedisClientOpt{Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	client := asynq.NewClient(opt)
	ctx, cancel := context.WithCancel(context.Background())
	relay := &outbox.Relay{DB: app, Queue: client, Log: zerolog.Nop(), Idle: c.relayIdle, Loops: c.relayLoops}
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	smtp, err := mail.NewSMTP(smtpURL+"?tls=none", "Keel <no-reply@keel.test>")
	if err != nil {
		t.Fatal(err)
	}
	render, err := email.NewRenderer(baseURL, "Keel")
	if err != nil {
		t.Fatal(err)
	}
	cfg := asynq.Config{Concurrency: c.concurrency, Queues: map[string]int{task.QueueCritical: 6, task.QueueDefault: 3, task.QueueLow: 1},
		Logger: nopLogger{}, LogLevel: asynq.FatalLevel, ShutdownTimeout: 2 * time.Second,
		IsFailure: queue.IsFailure, ErrorHandler: &queue.FailureHandler{Dead: &deadtask.Service{DB: app}, Log: zerolog.Nop()}}
	if c.fast {
		cfg.TaskCheckInterval, cfg.RetryDelayFunc = 10*time.Millisecond, queue.RetryDelay(50*time.Millisecond, time.Second)
	}
	srv := asynq.NewServer(opt, cfg)
	mux := asynq.NewServeMux()
	deps.DB, deps.Mail, deps.Render, deps.Log = app, smtp, render, zerolog.Nop()
	if err := jobs.Register(mux, deps); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Shutdown()
		client.Close()
	})
}

type nopLogger struct{}

func (nopLogger) Debug(...any) {}
func (nopLogger) Info(...any)  {}
func (nopLogger) Warn(...any)  {}
func (nopLogger) Error(...any) {}
func (nopLogger) Fatal(...any) {}

// req describes one call.
type req struct {
	method, path string
	body         any
	token        string
	ip           string
	header       map[string]string
	cookies      []*http.Cookie
}

// do sends r through the router, checks it against the OpenAPI document and
// returns the response.
func (e *env) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	var body []byte
	switch b := r.body.(type) {
	case nil:
	case string:
		body = []byte(b)
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	hr := httptest.NewRequest(r.method, r.path, bytes.NewReader(body))
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.ip != "" {
		hr.RemoteAddr = r.ip + ":4321"
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	for _, c := range r.cookies {
		hr.AddCookie(c)
	}
	if e.noCheck {
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, hr)
		return w
	}
	return apitest.Do(e.t, e.h, hr)
}

// expect sends r and fails unless the status is want; it decodes a JSON
// body into out when out is not nil.
func (e *env) expect(r req, want int, out any) *httptest.ResponseRecorder {
	e.t.Helper()
	w := e.do(r)
	if w.Code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.path, w.Code, want, w.Body.String())
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			e.t.Fatalf("%s %s: decode: %v: %s", r.method, r.path, err, w.Body.String())
		}
	}
	return w
}

// problem sends r and fails unless it answers status with problem code.
func (e *env) problem(r req, status int, code string) *httptest.ResponseRecorder {
	e.t.Helper()
	w := e.do(r)
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	if w.Code != status || p.Code != code {
		e.t.Fatalf("%s %s: got %d %q, want %d %q: %s", r.method, r.path, w.Code, p.Code, status, code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		e.t.Fatalf("%s %s: content type %q", r.method, r.path, ct)
	}
	return w
}

var tokenRE = regexp.MustCompile(`token=([A-Za-z0-9_\-]+)`)

// mailWith waits for the n-th email (1-based, oldest first) to `to` whose
// subject holds subject and returns it.
func (e *env) mailWith(to, subject string, n int) mailtest.Message {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		list, _, err := e.mail.Messages(context.Background())
		if err == nil {
			var hits []mailtest.Summary
			for _, m := range list {
				if strings.Contains(m.Subject, subject) && len(m.To) > 0 && m.To[0].Address == to {
					hits = append(hits, m)
				}
			}
			if len(hits) >= n {
				msg, err := e.mail.Message(context.Background(), hits[len(hits)-n].ID) // list is newest first
				if err != nil {
					e.t.Fatal(err)
				}
				return msg
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no mail #%d to %s about %q (last error %v)", n, to, subject, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mailToken waits for the n-th email (1-based) to `to` whose subject holds
// subject, and returns the token of the link in its text body, once the
// token's hash is stored.
func (e *env) mailToken(to, subject string, n int) string {
	e.t.Helper()
	msg := e.mailWith(to, subject, n)
	m := tokenRE.FindStringSubmatch(msg.Text)
	if m == nil {
		e.t.Fatalf("no token in mail to %s: %s", to, msg.Text)
	}
	if !strings.Contains(msg.Text, baseURL+"/") {
		e.t.Fatalf("link in mail to %s is not under APP_BASE_URL: %s", to, msg.Text)
	}
	e.waitLinkStored(to, m[1])
	return m[1]
}

// waitLinkStored waits until the hash of a mailed token is committed. The
// worker stores it in the transaction that sends the email, which commits
// just after the SMTP server accepted the message: a person never sees that
// gap, a test reading Mailpit at once can. It fails when the hash never
// appears: every mailed link is stored.
func (e *env) waitLinkStored(to, token string) {
	e.t.Helper()
	hash := auth.HashToken(token)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var stored bool
		if err := e.db.Owner.Get(&stored, `SELECT EXISTS (SELECT 1 FROM email_tokens WHERE token_hash = $1)
			OR EXISTS (SELECT 1 FROM invitations WHERE token_hash = $1)`, hash); err != nil {
			e.t.Fatal(err)
		}
		if stored {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the link mailed to %s is not stored", to)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mailCount counts delivered emails to `to` whose subject holds subject.
func (e *env) mailCount(to, subject string) int {
	list, _, err := e.mail.Messages(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, m := range list {
		if strings.Contains(m.Subject, subject) && len(m.To) > 0 && m.To[0].Address == to {
			n++
		}
	}
	return n
}

type session struct {
	AccessToken    string `json:"access_token"`
	RefreshToken   string `json:"refresh_token"`
	TokenType      string `json:"token_type"`
	ExpiresIn      int    `json:"expires_in"`
	OrganizationID string `json:"organization_id"`
	Role           string `json:"role"`
}

const password = "correct horse battery staple 42"

// signup registers email, verifies it through the emailed link and logs in.
func (e *env) signup(emailAddr, name, orgName string) session {
	e.t.Helper()
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
		"email": emailAddr, "password": password, "name": name, "organization_name": orgName}}, 202, nil)
	tok := e.mailToken(emailAddr, "Confirm your email", 1)
	e.expect(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": tok}}, 204, nil)
	return e.login(emailAddr, password)
}

func (e *env) login(emailAddr, pw string) session {
	e.t.Helper()
	var s session
	e.expect(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": emailAddr, "password": pw}}, 200, &s)
	return s
}

// join invites emailAddr into the org of admin with role and has them
// register through the link; it returns their session in that org.
func (e *env) join(admin session, emailAddr, role string, nth int) session {
	e.t.Helper()
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: admin.AccessToken,
		body: map[string]string{"email": emailAddr, "role": role}}, 201, nil)
	tok := e.mailToken(emailAddr, "invited you", nth)
	var acc struct {
		Session session `json:"session"`
	}
	e.expect(req{method: "POST", path: "/api/v1/invitations/accept", body: map[string]string{
		"token": tok, "name": "Invitee", "password": password}}, 200, &acc)
	return acc.Session
}
