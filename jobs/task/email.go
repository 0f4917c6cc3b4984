package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"

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
	// TypeEmailAccount is an account's email: address verification and
	// password reset. It is a platform task: an account belongs to no
	// organization (a user may be in several, or none, and an email change
	// or reset concerns them all), its handler reads no tenant rows, and a
	// reset link must not wait behind some organization's burst of
	// invitations. Verification at registration is account mail too, though
	// the organization is new: the account outlives it.
	TypeEmailAccount = "email:account"
)

// EmailPayload is the payload of email:send and email:account: the
// template, the recipient and the template's data.
type EmailPayload struct {
	To       string            `json:"to"`
	Template string            `json:"template"`
	Data     map[string]string `json:"data,omitempty"`
	// InvitationID, on an invitation email (email:send only), names the
	// invitation: the worker sends only while that invitation is pending in
	// the task's organization, so a revoked, accepted or replaced invitation
	// is never mailed.
	InvitationID *uuid.UUID `json:"invitation_id,omitempty"`
}

func (p EmailPayload) check(typ string) error {
	if _, err := mail.ParseAddress(p.To); err != nil {
		return fmt.Errorf("%s: bad recipient %q: %w", typ, p.To, err)
	}
	if p.Template == "" {
		return fmt.Errorf("%s: no template", typ)
	}
	return nil
}

// NewEmailSendTask builds the email:send outbox task of organization org.
// It fails for uuid.Nil: organization mail always names its organization.
func NewEmailSendTask(org uuid.UUID, p EmailPayload) (outbox.Task, error) {
	if err := p.check(TypeEmailSend); err != nil {
		return outbox.Task{}, err
	}
	if p.InvitationID != nil && *p.InvitationID == uuid.Nil {
		return outbox.Task{}, errors.New("email:send: nil invitation ID")
	}
	return build(TypeEmailSend, org, p)
}

// NewAccountEmailTask builds the email:account outbox task, which acts for
// no organization.
func NewAccountEmailTask(p EmailPayload) (outbox.Task, error) {
	if err := p.check(TypeEmailAccount); err != nil {
		return outbox.Task{}, err
	}
	if p.InvitationID != nil {
		return outbox.Task{}, errors.New("email:account: an invitation is organization mail (email:send)")
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
