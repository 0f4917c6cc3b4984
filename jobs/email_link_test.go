package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/platform/queuetest"
	"github.com/keelhq/keel/jobs/task"
)

// Account links (verification, reset) are minted by the worker when it
// mails them: the task names the email_tokens row, and the token exists
// only in the mail and, hashed, in the row. These tests drive the worker
// path with rows made as the API makes them (token_hash NULL).

// linkToken returns the token of the link starting with prefix in text.
func linkToken(t *testing.T, text, prefix string) string {
	t.Helper()
	i := strings.Index(text, prefix)
	if i < 0 {
		t.Fatalf("no link %s… in:\n%s", prefix, text)
	}
	tok := text[i+len(prefix):]
	if j := strings.IndexAny(tok, " \r\n"); j >= 0 {
		tok = tok[:j]
	}
	return tok
}

// newLink inserts a user and a live, unminted link row of purpose for
// address, expiring in ttl, and returns the row's ID.
func (e *env) newLink(t *testing.T, address, purpose string, ttl time.Duration) uuid.UUID {
	t.Helper()
	user, id := uuid.New(), uuid.New()
	e.db.Owner.MustExec(`INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, 'Ada', 'x')`, user, address)
	e.db.Owner.MustExec(`INSERT INTO email_tokens (id, user_id, purpose, email, token_hash, expires_at)
		VALUES ($1, $2, $3, $4, NULL, now() + $5 * interval '1 second')`, id, user, purpose, address, ttl.Seconds())
	return id
}

// enqueueLink enqueues the email:account task mailing link row id to to,
// under task ID taskID.
func (e *env) enqueueLink(t *testing.T, taskID, to, template string, id uuid.UUID) {
	t.Helper()
	m, err := task.NewAccountEmailTask(task.EmailPayload{To: to, Template: template, TokenID: &id,
		Data: map[string]string{"name": "Ada", "hours": "24", "minutes": "60"}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(m.Payload, []byte("token=")) || bytes.Contains(m.Payload, []byte("link")) {
		t.Fatalf("the payload carries a link: %s", m.Payload)
	}
	if _, err := queuetest.Client(t, e.redis).Enqueue(asynq.NewTask(m.Type, m.Payload), asynq.TaskID(taskID),
		asynq.Queue(m.Queue), asynq.Retention(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func (e *env) storedHash(t *testing.T, id uuid.UUID) []byte {
	t.Helper()
	var h []byte
	if err := e.db.Owner.Get(&h, `SELECT token_hash FROM email_tokens WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return h
}

// The link is minted at send time and works; a retry of the task after
// the successful send (a lost ack, a lease that expired) sends nothing and
// mints nothing.
func TestAccountLinkMintedOnceAtSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := e.serve(t)
	insp := queuetest.Inspector(t, e.redis)
	id := e.newLink(t, "ada@example.com", auth.PurposeResetPassword, time.Hour)

	e.enqueueLink(t, "reset-1", "ada@example.com", "reset_password", id)
	m := e.mail.WaitFor(t, "ada@example.com", 15*time.Second)
	waitState(t, insp, task.QueueCritical, "reset-1", asynq.TaskStateCompleted)
	tok := linkToken(t, m.Text, "https://app.keel.test/reset-password?token=")
	if h := e.storedHash(t, id); !bytes.Equal(h, auth.HashToken(tok)) {
		t.Fatalf("stored hash %x is not the mailed token's", h)
	}

	// The same task ID runs again.
	if err := insp.DeleteTask(task.QueueCritical, "reset-1"); err != nil {
		t.Fatal(err)
	}
	e.enqueueLink(t, "reset-1", "ada@example.com", "reset_password", id)
	waitState(t, insp, task.QueueCritical, "reset-1", asynq.TaskStateCompleted)
	if runs := rec.Counts()["reset-1"]; runs != 2 {
		t.Fatalf("handler ran %d times, want 2", runs)
	}
	if _, total, err := e.mail.Messages(context.Background()); err != nil || total != 1 {
		t.Fatalf("mailpit holds %d messages (%v), want 1", total, err)
	}
	if h := e.storedHash(t, id); !bytes.Equal(h, auth.HashToken(tok)) {
		t.Fatal("the retry minted another token")
	}
	if _, err := (authdb.Store{}).UseEmailToken(context.Background(), e.db.App, auth.PurposeResetPassword, auth.HashToken(tok)); err != nil {
		t.Fatalf("the mailed link does not work: %v", err)
	}
}

// A link row that is voided (a password change, a newer link), used or
// expired before the worker reaches it is never mailed, nor is one whose
// task names another recipient or template; each task completes.
func TestAccountLinkNotMailedWhenNoLongerLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.serve(t)
	insp := queuetest.Inspector(t, e.redis)
	ctx := context.Background()

	voided := e.newLink(t, "voided@example.com", auth.PurposeResetPassword, time.Hour)
	var user uuid.UUID
	if err := e.db.Owner.Get(&user, `SELECT user_id FROM email_tokens WHERE id = $1`, voided); err != nil {
		t.Fatal(err)
	}
	// What a password change does to the user's links.
	if err := (authdb.Store{}).VoidEmailTokens(ctx, e.db.App, user); err != nil {
		t.Fatal(err)
	}
	expired := e.newLink(t, "expired@example.com", auth.PurposeVerifyEmail, -time.Minute)
	other := e.newLink(t, "owner@example.com", auth.PurposeResetPassword, time.Hour)
	verify := e.newLink(t, "verify@example.com", auth.PurposeVerifyEmail, time.Hour)

	e.enqueueLink(t, "voided", "voided@example.com", "reset_password", voided)
	e.enqueueLink(t, "expired", "expired@example.com", "verify_email", expired)
	e.enqueueLink(t, "recipient", "thief@example.com", "reset_password", other)
	e.enqueueLink(t, "template", "verify@example.com", "reset_password", verify) // a verification row mailed as a reset
	e.enqueueLink(t, "unknown", "nobody@example.com", "reset_password", uuid.New())
	for _, id := range []string{"voided", "expired", "recipient", "template", "unknown"} {
		waitState(t, insp, task.QueueCritical, id, asynq.TaskStateCompleted)
	}
	if _, total, err := e.mail.Messages(ctx); err != nil || total != 0 {
		t.Fatalf("mailpit holds %d messages (%v), want 0", total, err)
	}
	var minted, sent int
	if err := e.db.Owner.Get(&minted, `SELECT count(*) FROM email_tokens WHERE token_hash IS NOT NULL`); err != nil || minted != 0 {
		t.Fatalf("%d tokens minted (%v), want 0", minted, err)
	}
	if err := e.db.Owner.Get(&sent, `SELECT count(*) FROM sent_emails`); err != nil || sent != 0 {
		t.Fatalf("%d sent_emails rows (%v), want 0", sent, err)
	}

	// The right task for the verification row still mails it.
	e.enqueueLink(t, "verify", "verify@example.com", "verify_email", verify)
	m := e.mail.WaitFor(t, "verify@example.com", 15*time.Second)
	waitState(t, insp, task.QueueCritical, "verify", asynq.TaskStateCompleted) // committed, hash stored
	tok := linkToken(t, m.Text, "https://app.keel.test/verify-email?token=")
	if err := (&auth.Service{DB: e.db.App, Users: authdb.Store{}}).VerifyEmail(ctx, tok, audit.Meta{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

// sendsThenFails delivers the first message and then reports a failure, as
// when the connection drops after the server took the message: the attempt
// minted and sent, but never learned that SMTP accepted it.
type sendsThenFails struct {
	next  email.Sender
	calls atomic.Int32
}

func (s *sendsThenFails) Send(ctx context.Context, m email.Message) error {
	err := s.next.Send(ctx, m)
	if s.calls.Add(1) == 1 && err == nil {
		return errors.New("connection lost after the message was accepted")
	}
	return err
}

// An attempt that mailed a link but never learned SMTP accepted it is sent
// again (SMTP cannot say whether the first copy went out), with a fresh
// link whose hash replaces the first: the first copy's link never works,
// the retry's does. Two tasks naming one row (a duplicate, a forged copy)
// mail it once.
func TestAccountLinkOfAnUncommittedSendNeverWorks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deps.Mail = &sendsThenFails{next: e.deps.Mail}
	e.serve(t)
	insp := queuetest.Inspector(t, e.redis)
	ctx := context.Background()
	accounts := &auth.Service{DB: e.db.App, Users: authdb.Store{}}

	id := e.newLink(t, "ada@example.com", auth.PurposeVerifyEmail, time.Hour)
	e.enqueueLink(t, "verify-1", "ada@example.com", "verify_email", id)
	waitState(t, insp, task.QueueCritical, "verify-1", asynq.TaskStateCompleted)
	list, total, err := e.mail.Messages(ctx)
	if err != nil || total != 2 {
		t.Fatalf("mailpit holds %d messages (%v), want 2 (the cut attempt's and the retry's)", total, err)
	}
	var toks []string
	for _, s := range list { // newest first
		m, err := e.mail.Message(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, linkToken(t, m.Text, "https://app.keel.test/verify-email?token="))
	}
	if toks[0] == toks[1] {
		t.Fatal("the retry mailed the same token")
	}
	if err := accounts.VerifyEmail(ctx, toks[1], audit.Meta{}); err == nil {
		t.Fatal("the link of the cut attempt works")
	}
	if err := accounts.VerifyEmail(ctx, toks[0], audit.Meta{}); err != nil {
		t.Fatalf("the retry's link does not work: %v", err)
	}

	// Two tasks for one row, at once: one mail.
	twice := e.newLink(t, "bob@example.com", auth.PurposeVerifyEmail, time.Hour)
	e.enqueueLink(t, "twice-1", "bob@example.com", "verify_email", twice)
	e.enqueueLink(t, "twice-2", "bob@example.com", "verify_email", twice)
	waitState(t, insp, task.QueueCritical, "twice-1", asynq.TaskStateCompleted)
	waitState(t, insp, task.QueueCritical, "twice-2", asynq.TaskStateCompleted)
	if got := countTo(t, e, "bob@example.com"); got != 1 {
		t.Fatalf("bob@ got %d mails, want 1", got)
	}
}

func countTo(t *testing.T, e *env, to string) int {
	t.Helper()
	list, _, err := e.mail.Messages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range list {
		if len(m.To) > 0 && m.To[0].Address == to {
			n++
		}
	}
	return n
}

// watchesTransactions is a Sender that, while "SMTP" runs, counts the
// sessions of the test database left idle inside a transaction: a handler
// holding its transaction over SMTP shows up as one.
type watchesTransactions struct {
	next  email.Sender
	owner *sqlx.DB
	open  atomic.Int32
	sends atomic.Int32
}

func (w *watchesTransactions) Send(ctx context.Context, m email.Message) error {
	var n int32
	if err := w.owner.GetContext(ctx, &n, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'`); err != nil {
		return err
	}
	w.open.Add(n)
	w.sends.Add(1)
	return w.next.Send(ctx, m)
}

// No transaction is open while SMTP runs, for plain mail and for mail with
// a minted link, and the row records that SMTP accepted the message.
func TestEmailSendHoldsNoTransactionOverSMTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := &watchesTransactions{next: e.deps.Mail, owner: e.db.Owner}
	e.deps.Mail = w
	e.serve(t)
	insp := queuetest.Inspector(t, e.redis)

	id := e.newLink(t, "ada@example.com", auth.PurposeVerifyEmail, time.Hour)
	// One at a time: the other task's own short transaction is no failure.
	e.enqueueLink(t, "verify-1", "ada@example.com", "verify_email", id)
	waitState(t, insp, task.QueueCritical, "verify-1", asynq.TaskStateCompleted)
	if _, err := queuetest.Client(t, e.redis).Enqueue(asynq.NewTask(task.TypeEmailAccount,
		[]byte(`{"to":"bob@example.com","template":"welcome","data":{"name":"Bob"}}`)), asynq.TaskID("welcome-1"),
		asynq.Queue(task.QueueCritical), asynq.Retention(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitState(t, insp, task.QueueCritical, "welcome-1", asynq.TaskStateCompleted)
	if w.sends.Load() != 2 || w.open.Load() != 0 {
		t.Fatalf("%d sends saw %d sessions idle in a transaction, want 2 sends and none", w.sends.Load(), w.open.Load())
	}
	var unsent int
	if err := e.db.Owner.Get(&unsent, `SELECT count(*) FROM sent_emails WHERE task_id IN ('verify-1', 'welcome-1') AND sent_at IS NULL`); err != nil || unsent != 0 {
		t.Fatalf("%d sent emails not recorded as accepted (%v)", unsent, err)
	}
}
