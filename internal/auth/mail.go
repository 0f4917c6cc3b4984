package auth

import (
	"context"

	"github.com/jmoiron/sqlx"

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
