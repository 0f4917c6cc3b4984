package task

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/outbox"
)

// Email task types. Both render a template and send it over SMTP, with the
// same handler; they differ in whom the email is for.
const (
	// TypeEmailSend is an organization's email: an invitation today, billing
	// and dunning notices later. It is a tenant task: it carries its org_id,
	// waits its turn behind the organization's other tasks, and runs under
	// the organization's Row Level Security, so it can check that what it is
	// about (an invitation) is still there and still the organization's.
	TypeEmailSend = "email:send"
	// TypeEmailAccount is an account's email: address verification,
	// password reset and security notices. It is a platform task: an account belongs to no
	// organization (a user may be in several, or none, and an email change
	// or reset concerns them all), its handler reads no tenant rows, and a
	// reset link must not wait behind some organization's burst of
	// invitations. Verification at registration is account mail too, though
	// the organization is new: the account outlives it.
	TypeEmailAccount = "email:account"
)

// EmailPayload is the payload of email:send and email:account: the
// template, the recipient, the template's non-secret data (names, counts)
// and, for an email that carries a link, the ID of what the link is for.
//
// A payload never carries a usable secret: it is kept in the outbox, in
// Redis, in dead_tasks and shown in the queue UI. The worker mints a link's
// token when it sends the email, stores only its hash, and adds the link to
// the template's data as "link".
type EmailPayload struct {
	To       string            `json:"to"`
	Template string            `json:"template"`
	Data     map[string]string `json:"data,omitempty"`
	// InvitationID, on an invitation email (email:send only), names the
	// invitation: the worker mints its link, and sends only while that
	// invitation is pending in the task's organization, so a revoked,
	// accepted or replaced invitation is never mailed.
	InvitationID *uuid.UUID `json:"invitation_id,omitempty"`
	// TokenID, on a verification or reset email (email:account only), names
	// the email_tokens row: the worker mints its link, and sends only while
	// the row is live (not used, voided or expired) and not yet mailed.
	TokenID *uuid.UUID `json:"token_id,omitempty"`
}

// secretKey matches template data keys that would carry a secret or a
// link; the worker adds "link" itself.
var secretKey = regexp.MustCompile(`(?i)link|token|secret|password|url`)

func (p EmailPayload) check(typ string) error {
	if _, err := mail.ParseAddress(p.To); err != nil {
		return fmt.Errorf("%s: bad recipient %q: %w", typ, p.To, err)
	}
	if p.Template == "" {
		return fmt.Errorf("%s: no template", typ)
	}
	for k := range p.Data {
		if secretKey.MatchString(k) {
			return fmt.Errorf("%s: template data %q: links are minted by the worker, never carried in a payload", typ, k)
		}
	}
	switch {
	case p.InvitationID != nil && *p.InvitationID == uuid.Nil, p.TokenID != nil && *p.TokenID == uuid.Nil:
		return fmt.Errorf("%s: nil link ID", typ)
	case p.InvitationID != nil && typ != TypeEmailSend:
		return fmt.Errorf("%s: an invitation is organization mail (%s)", typ, TypeEmailSend)
	case p.TokenID != nil && typ != TypeEmailAccount:
		return fmt.Errorf("%s: an account link is account mail (%s)", typ, TypeEmailAccount)
	}
	return nil
}

// NewEmailSendTask builds the email:send outbox task of organization org.
// It fails for uuid.Nil: organization mail always names its organization.
func NewEmailSendTask(org uuid.UUID, p EmailPayload) (outbox.Task, error) {
	if err := p.check(TypeEmailSend); err != nil {
		return outbox.Task{}, err
	}
	return build(TypeEmailSend, org, p)
}

// NewAccountEmailTask builds the email:account outbox task, which acts for
// no organization.
func NewAccountEmailTask(p EmailPayload) (outbox.Task, error) {
	if err := p.check(TypeEmailAccount); err != nil {
		return outbox.Task{}, err
	}
	return build(TypeEmailAccount, uuid.Nil, p)
}

// build marshals p into the outbox task of typ acting for org.
func build(typ string, org uuid.UUID, p any) (outbox.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return outbox.Task{}, fmt.Errorf("%s: %w", typ, err)
	}
	return SpecOf(typ).Outbox(org, b)
}
