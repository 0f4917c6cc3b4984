package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/jobs/task"
)

// QueueEmail adds an account email (email:account: verification, reset,
// notices) to the outbox inside tx; it is sent only if tx commits. Account
// mail belongs to no organization, even at registration; an organization's
// mail is email:send (see task.NewEmailSendTask).
func QueueEmail(ctx context.Context, tx sqlx.ExtContext, to, template string, data map[string]string) error {
	return queueAccountEmail(ctx, tx, task.EmailPayload{To: to, Template: template, Data: data})
}

// queueLink creates the link token row t without a token and queues the
// email that will carry its link, inside tx. The payload names the row; the
// worker mints the token when it sends the email (LinkToMail, MintLink), so
// no usable token is ever stored but as a hash. The link's template is its
// purpose (verify_email, reset_password).
func (s *Service) queueLink(ctx context.Context, tx sqlx.ExtContext, t *EmailToken, data map[string]string) error {
	t.TokenHash = nil
	if err := s.Users.CreateEmailToken(ctx, tx, t); err != nil {
		return err
	}
	return queueAccountEmail(ctx, tx, task.EmailPayload{To: t.Email, Template: t.Purpose, Data: data, TokenID: &t.ID})
}

func queueAccountEmail(ctx context.Context, tx sqlx.ExtContext, p task.EmailPayload) error {
	t, err := task.NewAccountEmailTask(p)
	if err != nil {
		return err
	}
	_, err = outbox.Add(ctx, tx, t)
	return err
}

// linkPaths are the app's pages that take each purpose's token.
var linkPaths = map[string]string{PurposeVerifyEmail: "/verify-email", PurposeResetPassword: "/reset-password"}

// LinkToMail is the worker's first step in mailing an account link: it
// locks link token row id in tx and returns the address the link goes to
// and the row's purpose (which is its email's template), when the link may
// still be mailed. ok is false when there is nothing to send: the row was
// used or voided (a newer link of the same purpose, a password change or a
// reset voids it), expired (the lifetime runs from the request, not from
// the send), or is already minted (mailed by an earlier task), unless again:
// the task that minted it never recorded SMTP's acceptance, so it mints and
// sends anew. The lock makes concurrent tasks for one row, and a void
// racing the mint, take turns.
func (s *Service) LinkToMail(ctx context.Context, tx *sqlx.Tx, id uuid.UUID, again bool) (to, purpose string, ok bool, err error) {
	t, err := s.Users.EmailTokenToMail(ctx, tx, id, again)
	if errors.Is(err, ErrNotFound) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("link to mail: %w", err)
	}
	return t.Email, t.Purpose, true, nil
}

// MintLink draws the token of link row id (locked by LinkToMail in the same
// tx), stores its hash and returns the link to mail, under BaseURL. The
// token exists nowhere but in the returned link. Minting again replaces the
// hash, so the link of a send whose outcome was unknown stops working and
// only the newest mail's link opens.
func (s *Service) MintLink(ctx context.Context, tx *sqlx.Tx, id uuid.UUID, again bool) (string, error) {
	token, hash := NewOpaqueToken()
	purpose, err := s.Users.MintEmailToken(ctx, tx, id, hash, again)
	if err != nil {
		return "", fmt.Errorf("mint link: %w", err)
	}
	path, ok := linkPaths[purpose]
	if !ok {
		return "", fmt.Errorf("mint link: no page for purpose %q", purpose)
	}
	return email.Link(s.BaseURL, path, token), nil
}

// Security notices: templates that tell an address about a change to its
// account. They carry no link with a token, so a notice read by the wrong
// person opens nothing.
const (
	NoticePasswordChanged      = "password_changed"
	NoticeTwoFactorChanged     = "two_factor_changed"
	NoticeEmailChangeRequested = "email_change_requested"
	NoticeAddressInUse         = "address_in_use"
)

// notify queues a security notice about u's account to address, naming
// when and from which IP the change was made; extra adds template data as
// key, value pairs.
func (s *Service) notify(ctx context.Context, tx sqlx.ExtContext, address, template string, u *User, meta audit.Meta, extra ...string) error {
	data := map[string]string{"name": u.Name, "when": s.now().UTC().Format(time.RFC1123), "ip": meta.IP}
	for i := 0; i+1 < len(extra); i += 2 {
		data[extra[i]] = extra[i+1]
	}
	return QueueEmail(ctx, tx, address, template, data)
}
