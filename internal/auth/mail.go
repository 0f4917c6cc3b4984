package auth

import (
	"context"

	"github.com/jmoiron/sqlx"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/jobs"
)

// QueueEmail adds an email:send task to the outbox inside tx; it is sent
// only if tx commits.
func QueueEmail(ctx context.Context, tx sqlx.ExtContext, to, template string, data map[string]string) error {
	task, err := jobs.NewEmailSendTask(jobs.EmailSendPayload{To: to, Template: template, Data: data}, jobs.QueueCritical)
	if err != nil {
		return err
	}
	_, err = outbox.Add(ctx, tx, task)
	return err
}

// link is an absolute link into the app carrying token.
func (s *Service) link(path, token string) string { return email.Link(s.BaseURL, path, token) }
