package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/queuetest"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

// Register puts every type behind its tenancy: a tenant task without a
// valid org_id and a platform task with one are refused for good before
// their handler runs.
func TestRegisterRefusesTasksOfTheWrongTenancy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mux := asynq.NewServeMux()
	if err := jobs.Register(mux, e.deps); err != nil {
		t.Fatal(err)
	}
	payload := map[string][]byte{
		task.TypeEmailSend:    []byte(`{"to":"x@example.com","template":"welcome","data":{"name":"X"}}`),
		task.TypeEmailAccount: []byte(`{"to":"x@example.com","template":"welcome","data":{"name":"X"}}`),
	}
	for _, s := range task.Specs() {
		var bad []map[string]string
		switch s.Tenancy {
		case task.Tenant:
			bad = []map[string]string{nil, {outbox.HeaderOrgID: ""}, {outbox.HeaderOrgID: "org-7"}, {outbox.HeaderOrgID: uuid.Nil.String()}}
		case task.Platform:
			bad = []map[string]string{{outbox.HeaderOrgID: uuid.NewString()}, {outbox.HeaderOrgID: ""}}
		}
		for _, h := range bad {
			p, ok := payload[s.Type]
			if !ok {
				p, _ = json.Marshal(task.PeriodicPayload{Slot: time.Now()})
			}
			err := mux.ProcessTask(context.Background(), asynq.NewTaskWithHeaders(s.Type, p, h))
			if !errors.Is(err, task.ErrTenancy) || !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("%s (%s) with headers %v: got %v, want ErrTenancy and SkipRetry", s.Type, s.Tenancy, h, err)
			}
		}
	}
	var ran int
	if err := e.db.Owner.Get(&ran, `SELECT (SELECT count(*) FROM sent_emails) + (SELECT count(*) FROM canary_runs) + (SELECT count(*) FROM job_runs)`); err != nil || ran != 0 {
		t.Fatalf("a refused task ran its handler: %d rows (%v)", ran, err)
	}
}

// An invitation email is sent only while its invitation is pending in the
// task's organization, as that organization's Row Level Security sees it,
// and not yet mailed; the worker mints its link then. A task that finds
// nothing to send completes (it is not a failure).
func TestInvitationEmailOnlyWhilePending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	orgA, orgB := uuid.New(), uuid.New()
	pending, accepted, expired, minted := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	e.db.Owner.MustExec(`INSERT INTO organizations (id, name) VALUES ($1, 'A'), ($2, 'B')`, orgA, orgB)
	e.db.Owner.MustExec(`INSERT INTO invitations (id, org_id, email, role, token_hash, expires_at, accepted_at) VALUES
		($2, $1, 'pending@example.com', 'member', NULL, now() + interval '7 days', NULL),
		($3, $1, 'accepted@example.com', 'member', NULL, now() + interval '7 days', now()),
		($4, $1, 'expired@example.com', 'member', NULL, now() - interval '1 minute', NULL),
		($5, $1, 'minted@example.com', 'member', '\x01', now() + interval '7 days', NULL)`,
		orgA, pending, accepted, expired, minted)
	e.serve(t)
	client := queuetest.Client(t, e.redis)
	insp := queuetest.Inspector(t, e.redis)
	enqueue := func(org uuid.UUID, to string, inv uuid.UUID) string {
		t.Helper()
		m, err := task.NewEmailSendTask(org, task.EmailPayload{To: to, Template: "invitation", InvitationID: &inv,
			Data: map[string]string{"inviter": "Ada", "organization": "A", "role": "member", "days": "7"}})
		if err != nil {
			t.Fatal(err)
		}
		info, err := client.Enqueue(asynq.NewTaskWithHeaders(m.Type, m.Payload, m.Headers), asynq.Queue(m.Queue), asynq.Retention(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}
	ids := []string{
		enqueue(orgB, "pending@example.com", pending), // org B naming org A's invitation
		enqueue(orgA, "forged@example.com", pending),  // another recipient than the invitation's
		enqueue(orgA, "accepted@example.com", accepted),
		enqueue(orgA, "expired@example.com", expired),
		enqueue(orgA, "minted@example.com", minted),      // mailed already
		enqueue(orgA, "revoked@example.com", uuid.New()), // revoked: the row is gone
	}
	for _, id := range ids {
		waitState(t, insp, task.QueueDefault, id, asynq.TaskStateCompleted)
	}
	ids = append(ids, enqueue(orgA, "pending@example.com", pending))
	got := e.mail.WaitFor(t, "pending@example.com", 15*time.Second)
	waitState(t, insp, task.QueueDefault, ids[len(ids)-1], asynq.TaskStateCompleted)
	list, total, err := e.mail.Messages(context.Background())
	if err != nil || total != 1 {
		t.Fatalf("mailpit holds %d messages (%v), want only pending@: %+v", total, err, list)
	}
	var sent []string
	if err := e.db.Owner.Select(&sent, `SELECT recipient FROM sent_emails`); err != nil || len(sent) != 1 || sent[0] != "pending@example.com" {
		t.Fatalf("sent_emails: %v (%v)", sent, err)
	}
	// The mailed link's token is the one whose hash is stored.
	tok := linkToken(t, got.Text, "https://app.keel.test/accept-invitation?token=")
	var stored []byte
	if err := e.db.Owner.Get(&stored, `SELECT token_hash FROM invitations WHERE id = $1`, pending); err != nil || !bytes.Equal(stored, auth.HashToken(tok)) {
		t.Fatalf("stored hash %x (%v) is not the mailed token's", stored, err)
	}
}
