package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/email/emaildb"
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
	// Invitations tells whether an invitation is still pending, so a revoked
	// one is never mailed; *org.Service implements it.
	Invitations InvitationChecker
}

// InvitationChecker is what email:send needs of organizations.
type InvitationChecker interface {
	// InvitationPending reports whether invitation id is pending as org's
	// tenant transaction tx sees it, locking it until tx ends.
	InvitationPending(ctx context.Context, tx *sqlx.Tx, orgID, id uuid.UUID) (bool, error)
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
	org := queue.OrgID(ctx)
	return postgres.InTx(ctx, h.DB, org, func(tx *sqlx.Tx) error {
		if p.InvitationID != nil {
			ok, err := h.Invitations.InvitationPending(ctx, tx, org, *p.InvitationID)
			if err != nil {
				return err
			}
			if !ok {
				// Done, not failed: there is nothing to send any more.
				zerolog.Ctx(ctx).Info().Str("invitation_id", p.InvitationID.String()).
					Msg("invitation not pending in this organization; email not sent")
				return nil
			}
		}
		first, err := emaildb.RecordSend(ctx, tx, id, p.To, p.Template)
		if err != nil {
			return err
		}
		if !first {
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
