package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/jobs/task"
)

// EmailSendHandler runs email:send (an organization's mail) and
// email:account (an account's mail). It sends each email once per task ID:
// it records the send in sent_emails in the same transaction that holds the
// record's lock while SMTP runs, so a re-run of the task after success sends
// nothing. That transaction is the task's organization's (queue.OrgID,
// uuid.Nil for account mail), so Row Level Security decides what it sees.
type EmailSendHandler struct {
	DB     *sqlx.DB
	Mail   email.Sender
	Render *email.Renderer
}

// ProcessTask implements asynq.Handler.
func (h *EmailSendHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p task.EmailPayload
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
