package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"

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
// email:account (an account's mail). SMTP has no idempotency, so no design
// sends exactly once; this one keeps the window for a second copy to the
// SMTP exchange itself. In one short transaction it claims the send in
// sent_emails (by task ID) and, for an email with a link, mints the link;
// it commits, talks SMTP with no transaction open, then records SMTP's
// acceptance. A run after that acceptance was recorded sends nothing. A run
// after a claim whose acceptance was never recorded (SMTP refused, or the
// worker died mid-exchange, when the message may or may not have gone out)
// sends again, with the same Message-ID, so a mail client can fold the two.
// The transaction is the task's organization's (queue.OrgID, uuid.Nil for
// account mail), so Row Level Security decides what it sees.
//
// An email with a link (an invitation, a verification or reset link) names
// the row the link is for, and the link is minted in the claiming
// transaction: the row is locked and checked (still live, not yet mailed),
// a token drawn and its hash stored. The token exists only as a hash at
// rest and in the mail itself; a send made again mints a new token, whose
// hash replaces the old one, so only the newest copy's link opens.
type EmailSendHandler struct {
	DB     *sqlx.DB
	Mail   email.Sender
	Render *email.Renderer
	// Invitations mints invitation links; *org.Service implements it.
	Invitations InvitationLinks
	// Accounts mints verification and reset links; *auth.Service
	// implements it.
	Accounts AccountLinks
}

// InvitationLinks is what email:send needs of organizations.
type InvitationLinks interface {
	// InvitationToMail locks invitation id as org's tenant transaction tx
	// sees it and returns its address when its link may still be mailed
	// (pending, unexpired, not minted yet, or minted by this task's earlier
	// run when again); ok is false otherwise.
	InvitationToMail(ctx context.Context, tx *sqlx.Tx, orgID, id uuid.UUID, again bool) (to string, ok bool, err error)
	// MintInvitationLink stores the hash of a new token for the invitation
	// InvitationToMail locked and returns its link.
	MintInvitationLink(ctx context.Context, tx *sqlx.Tx, orgID, id uuid.UUID, again bool) (string, error)
}

// AccountLinks is what email:account needs of accounts.
type AccountLinks interface {
	// LinkToMail locks link token row id and returns its address and
	// purpose (its email's template) when its link may still be mailed
	// (live, unexpired, not minted yet, or minted by this task's earlier run
	// when again); ok is false otherwise.
	LinkToMail(ctx context.Context, tx *sqlx.Tx, id uuid.UUID, again bool) (to, purpose string, ok bool, err error)
	// MintLink stores the hash of a new token for the row LinkToMail
	// locked and returns its link.
	MintLink(ctx context.Context, tx *sqlx.Tx, id uuid.UUID, again bool) (string, error)
}

// ProcessTask implements asynq.Handler.
func (h *EmailSendHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p task.EmailPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	org := queue.OrgID(ctx)
	if (p.InvitationID != nil && t.Type() != task.TypeEmailSend) || (p.TokenID != nil && t.Type() != task.TypeEmailAccount) {
		return fmt.Errorf("%s: a link of the wrong kind of mail: %w", t.Type(), asynq.SkipRetry)
	}
	hasLink := p.InvitationID != nil || p.TokenID != nil
	var msg email.Message
	if !hasLink {
		// Rendered before the transaction: a bad template fails fast.
		var err error
		if msg, err = h.Render.Render(p.Template, p.To, p.Data); err != nil {
			return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
		}
	}
	id := taskID(ctx)
	send := false
	err := postgres.InTx(ctx, h.DB, org, func(tx *sqlx.Tx) error {
		claim, err := emaildb.ClaimSend(ctx, tx, id, p.To, p.Template)
		if err != nil || claim == emaildb.Sent {
			return err // Sent: an earlier run's message was accepted
		}
		again := claim == emaildb.Again
		if hasLink {
			ok, err := h.linkToMail(ctx, tx, org, p, again)
			if err != nil {
				return err
			}
			if !ok {
				return errNothingToSend // rolls the claim back
			}
			link, err := h.mint(ctx, tx, org, p, again)
			if err != nil {
				return err
			}
			data := maps.Clone(p.Data)
			if data == nil {
				data = map[string]string{}
			}
			data["link"] = link
			if msg, err = h.Render.Render(p.Template, p.To, data); err != nil {
				return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
			}
		}
		if again {
			zerolog.Ctx(ctx).Warn().Str("template", p.Template).
				Msg("an earlier run of this email task never recorded SMTP's acceptance; sending again")
		}
		send = true
		return nil
	})
	if errors.Is(err, errNothingToSend) || (err == nil && !send) {
		return nil
	}
	if err != nil {
		return err
	}
	msg.MessageID = id + "@keel"
	if err := h.Mail.Send(ctx, msg); err != nil {
		if errors.Is(err, email.ErrPermanent) {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	}
	// Failing to record the acceptance must not fail the task: a retry
	// would send a second copy of a message SMTP already took.
	if err := emaildb.MarkSent(context.WithoutCancel(ctx), h.DB, id); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("email sent, but not recorded as sent: a replay of this task would send it again")
	}
	return nil
}

// errNothingToSend ends the claiming transaction, rolled back, when the
// row a link is for may no longer be mailed.
var errNothingToSend = errors.New("nothing to send")

// linkToMail locks the row p's link is for and reports whether its email
// is still to be sent, to p.To: the address comes from the row, so a task
// naming another recipient sends nothing.
func (h *EmailSendHandler) linkToMail(ctx context.Context, tx *sqlx.Tx, org uuid.UUID, p task.EmailPayload, again bool) (bool, error) {
	log := zerolog.Ctx(ctx)
	if p.InvitationID != nil {
		to, ok, err := h.Invitations.InvitationToMail(ctx, tx, org, *p.InvitationID, again)
		switch {
		case err != nil:
			return false, err
		case !ok:
			log.Info().Str("invitation_id", p.InvitationID.String()).
				Msg("invitation not pending in this organization (or already mailed); email not sent")
			return false, nil
		case to != p.To:
			log.Warn().Str("invitation_id", p.InvitationID.String()).Msg("task recipient is not the invitation's; email not sent")
			return false, nil
		}
		return true, nil
	}
	to, purpose, ok, err := h.Accounts.LinkToMail(ctx, tx, *p.TokenID, again)
	switch {
	case err != nil:
		return false, err
	case !ok:
		log.Info().Str("token_id", p.TokenID.String()).
			Msg("link used, voided, expired or already mailed; email not sent")
		return false, nil
	case to != p.To || purpose != p.Template:
		log.Warn().Str("token_id", p.TokenID.String()).Msg("task recipient or template is not the link's; email not sent")
		return false, nil
	}
	return true, nil
}

// mint mints the link linkToMail allowed.
func (h *EmailSendHandler) mint(ctx context.Context, tx *sqlx.Tx, org uuid.UUID, p task.EmailPayload, again bool) (string, error) {
	if p.InvitationID != nil {
		return h.Invitations.MintInvitationLink(ctx, tx, org, *p.InvitationID, again)
	}
	return h.Accounts.MintLink(ctx, tx, *p.TokenID, again)
}
