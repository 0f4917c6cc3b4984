package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/queue"
)

// TypeEmailSend renders a template and sends it over SMTP.
const TypeEmailSend = "email:send"

// EmailSendPayload names the template, the recipient and the template's data.
type EmailSendPayload struct {
	To       string            `json:"to"`
	Template string            `json:"template"`
	Data     map[string]string `json:"data,omitempty"`
}

// NewEmailSendTask builds the outbox task for p. Auth emails go to the
// critical queue: a user is waiting for them.
func NewEmailSendTask(p EmailSendPayload, queueName string) (outbox.Task, error) {
	if _, err := mail.ParseAddress(p.To); err != nil {
		return outbox.Task{}, fmt.Errorf("email:send: bad recipient %q: %w", p.To, err)
	}
	if p.Template == "" {
		return outbox.Task{}, errors.New("email:send: no template")
	}
	b, err := json.Marshal(p)
	if err != nil {
		return outbox.Task{}, err
	}
	t := SpecOf(TypeEmailSend).Outbox(b)
	if queueName != "" {
		t.Queue = queueName
	}
	return t, nil
}

// EmailSendHandler sends each email once per task ID: it records the send in
// sent_emails in the same transaction that holds the record's lock while
// SMTP runs, so a re-run of the task after success sends nothing.
type EmailSendHandler struct {
	DB     *sqlx.DB
	Mail   email.Sender
	Render *email.Renderer
}

// ProcessTask implements asynq.Handler.
func (h *EmailSendHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p EmailSendPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	msg, err := h.Render.Render(p.Template, p.To, p.Data)
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	id := taskID(ctx)
	msg.MessageID = id + "@keel"
	return postgres.InTx(ctx, h.DB, queue.OrgID(ctx), func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO sent_emails (task_id, recipient, template) VALUES ($1, $2, $3)
			ON CONFLICT (task_id) DO NOTHING`, id, p.To, p.Template)
		if err != nil {
			return fmt.Errorf("record email: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // sent by an earlier run of this task
		}
		if err := h.Mail.Send(ctx, msg); err != nil {
			if errors.Is(err, email.ErrPermanent) {
				return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
			}
			return err
		}
		return nil
	})
}
