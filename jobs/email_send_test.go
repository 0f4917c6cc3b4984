package jobs_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/mail"
	"github.com/keelhq/keel/internal/platform/mailtest"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/queuetest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

type env struct {
	db    *postgrestest.DB
	mail  *mailtest.Server
	redis *redistest.Server
	deps  jobs.Deps
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{db: postgrestest.New(t), mail: mailtest.Start(t), redis: redistest.Start(t)}
	smtp, err := mail.NewSMTP(e.mail.SMTPURL, "Keel <no-reply@keel.test>")
	if err != nil {
		t.Fatal(err)
	}
	render, err := email.NewRenderer("https://app.keel.test", "Keel")
	if err != nil {
		t.Fatal(err)
	}
	e.deps = jobs.Deps{DB: e.db.App, Mail: smtp, Render: render}
	return e
}

// serve runs a worker-like Asynq server with every registered handler,
// recording each task ID it runs.
func (e *env) serve(t *testing.T) *queuetest.Recorder {
	t.Helper()
	mux := asynq.NewServeMux()
	if err := jobs.Register(mux, e.deps); err != nil {
		t.Fatal(err)
	}
	rec := &queuetest.Recorder{Next: mux}
	queuetest.Serve(t, e.redis, rec)
	return rec
}

func waitState(t *testing.T, insp *asynq.Inspector, queue, id string, state asynq.TaskState) *asynq.TaskInfo {
	t.Helper()
	var info *asynq.TaskInfo
	queuetest.Eventually(t, 15*time.Second, "task "+id+" reaches "+state.String(), func() bool {
		var err error
		info, err = insp.GetTaskInfo(queue, id)
		return err == nil && info.State == state
	})
	return info
}

// The whole path a feature uses: outbox row in the caller's transaction,
// relay, worker handler, SMTP; then a second run of the same task ID sends
// nothing. Account mail goes to the critical queue: a user waits for it.
func TestEmailSendEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	rec := e.serve(t)
	insp := queuetest.Inspector(t, e.redis)

	mail, err := task.NewAccountEmailTask(task.EmailPayload{To: "ada@example.com", Template: "welcome",
		Data: map[string]string{"name": "Ada <Lovelace>"}})
	if err != nil {
		t.Fatal(err)
	}
	var id uuid.UUID
	if err := postgres.InTx(ctx, e.db.App, uuid.Nil, func(tx *sqlx.Tx) error {
		id, err = outbox.Add(ctx, tx, mail)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	relay := &outbox.Relay{DB: e.db.App, Queue: queuetest.Client(t, e.redis), Log: zerolog.Nop()}
	if n, err := relay.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("relay: %d, %v", n, err)
	}

	m := e.mail.WaitFor(t, "ada@example.com", 15*time.Second)
	if m.Subject != "Welcome to Keel" || m.From.Address != "no-reply@keel.test" {
		t.Errorf("subject %q from %+v", m.Subject, m.From)
	}
	if !strings.Contains(m.Text, "Hello Ada <Lovelace>,") || !strings.Contains(m.Text, "Sign in at https://app.keel.test.") ||
		strings.Contains(m.Text, "<p>") {
		t.Errorf("text body:\n%s", m.Text)
	}
	if !strings.Contains(m.HTML, "<p>Hello Ada &lt;Lovelace&gt;,</p>") || !strings.Contains(m.HTML, `<a href="https://app.keel.test">Sign in</a>`) ||
		!strings.Contains(m.HTML, "<title>Welcome to Keel</title>") {
		t.Errorf("html body:\n%s", m.HTML)
	}
	info := waitState(t, insp, task.QueueCritical, id.String(), asynq.TaskStateCompleted)
	if info.MaxRetry != 10 || info.Timeout != time.Minute {
		t.Errorf("task options: max retry %d, timeout %s", info.MaxRetry, info.Timeout)
	}
	var recorded int
	if err := e.db.Owner.Get(&recorded, `SELECT count(*) FROM sent_emails WHERE task_id = $1 AND recipient = 'ada@example.com' AND template = 'welcome'`, id.String()); err != nil || recorded != 1 {
		t.Fatalf("sent_emails rows: %d, %v", recorded, err)
	}

	// Run the same task ID again, as Asynq may after a lost ack or once the
	// retention window has passed.
	if err := insp.DeleteTask(task.QueueCritical, id.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := queuetest.Client(t, e.redis).Enqueue(asynq.NewTask(task.TypeEmailAccount, mail.Payload),
		asynq.TaskID(id.String()), asynq.Queue(task.QueueCritical), asynq.Retention(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitState(t, insp, task.QueueCritical, id.String(), asynq.TaskStateCompleted)
	if runs := rec.Counts()[id.String()]; runs != 2 {
		t.Fatalf("handler ran %d times, want 2", runs)
	}
	if _, total, err := e.mail.Messages(ctx); err != nil || total != 1 {
		t.Fatalf("mailpit holds %d messages (%v), want 1", total, err)
	}
}

// Payloads that can never succeed are archived at once instead of being
// retried for days.
func TestEmailSendPermanentFailuresSkipRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &jobs.EmailSendHandler{DB: e.deps.DB, Mail: e.deps.Mail, Render: e.deps.Render, Invitations: &org.Service{DB: e.deps.DB, Store: orgdb.Store{}}}
	cases := map[string][]byte{
		"undecodable":      []byte(`{"to": 42`),
		"wrong shape":      []byte(`["ada@example.com"]`),
		"unknown template": []byte(`{"to":"ada@example.com","template":"no-such-email"}`),
		"missing data key": []byte(`{"to":"ada@example.com","template":"welcome"}`),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			err := h.ProcessTask(context.Background(), asynq.NewTask(task.TypeEmailAccount, payload))
			if !errors.Is(err, asynq.SkipRetry) {
				t.Fatalf("got %v, want an error wrapping asynq.SkipRetry", err)
			}
		})
	}

	// Through a real server: one attempt, then archived, no mail.
	e.serve(t)
	insp := queuetest.Inspector(t, e.redis)
	client := queuetest.Client(t, e.redis)
	for name, payload := range cases {
		info, err := client.Enqueue(asynq.NewTask(task.TypeEmailAccount, payload), asynq.MaxRetry(5))
		if err != nil {
			t.Fatal(err)
		}
		got := waitState(t, insp, "default", info.ID, asynq.TaskStateArchived)
		if got.Retried != 0 {
			t.Errorf("%s: retried %d times before archiving", name, got.Retried)
		}
	}
	if _, total, err := e.mail.Messages(context.Background()); err != nil || total != 0 {
		t.Fatalf("mailpit holds %d messages (%v), want 0", total, err)
	}
	var rows int
	if err := e.db.Owner.Get(&rows, `SELECT count(*) FROM sent_emails`); err != nil || rows != 0 {
		t.Fatalf("sent_emails rows: %d, %v", rows, err)
	}
}

// An SMTP outage is temporary: the task fails, its claim stays unsent, and
// a later attempt sends the mail once.
func TestEmailSendRetriesWhenSMTPIsDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	down, err := mail.NewSMTP("smtp://127.0.0.1:"+strconv.Itoa(redistest.FreePort(t)), "Keel <no-reply@keel.test>")
	if err != nil {
		t.Fatal(err)
	}
	p := []byte(`{"to":"bob@example.com","template":"welcome","data":{"name":"Bob"}}`)
	h := &jobs.EmailSendHandler{DB: e.deps.DB, Mail: down, Render: e.deps.Render, Invitations: &org.Service{DB: e.deps.DB, Store: orgdb.Store{}}}
	err = h.ProcessTask(context.Background(), asynq.NewTask(task.TypeEmailAccount, p))
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("SMTP down: got %v, want a retryable error", err)
	}
	var sent int
	if err := e.db.Owner.Get(&sent, `SELECT count(*) FROM sent_emails WHERE sent_at IS NOT NULL`); err != nil || sent != 0 {
		t.Fatalf("a failed send is recorded as sent in %d sent_emails rows (%v)", sent, err)
	}
	e.serve(t)
	if _, err := queuetest.Client(t, e.redis).Enqueue(asynq.NewTask(task.TypeEmailAccount, p), asynq.TaskID("retry-1")); err != nil {
		t.Fatal(err)
	}
	e.mail.WaitFor(t, "bob@example.com", 15*time.Second)
}

func TestRegisterNeedsEveryDependency(t *testing.T) {
	t.Parallel()
	if err := jobs.Register(asynq.NewServeMux(), jobs.Deps{}); err == nil {
		t.Fatal("Register accepted missing dependencies")
	}
}
