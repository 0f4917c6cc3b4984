package auth

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/jobs/task"
)

// QueueEmail adds an account email (email:account: verification, reset) to
// the outbox inside tx; it is sent only if tx commits. Account mail belongs
// to no organization, even at registration; an organization's mail is
// email:send (see task.NewEmailSendTask).
func QueueEmail(ctx context.Context, tx sqlx.ExtContext, to, template string, data map[string]string) error {
	t, err := task.NewAccountEmailTask(task.EmailPayload{To: to, Template: template, Data: data})
	if err != nil {
		return err
	}
	_, err = outbox.Add(ctx, tx, t)
	return err
}

// link is an absolute link into the app carrying token.
func (s *Service) link(path, token string) string { return email.Link(s.BaseURL, path, token) }

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
