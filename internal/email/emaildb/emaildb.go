// Package emaildb stores sent_emails, the record of which emails were
// handed to SMTP, by task ID, so a task that runs again after its message
// was accepted mails nothing twice. sent_emails is a platform table (no
// org_id, no Row Level Security); the email handler writes it in its task's
// transaction, whichever tenant that transaction set.
package emaildb

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// Claim is what ClaimSend found.
type Claim int

const (
	// First: no earlier run of the task claimed this send.
	First Claim = iota
	// Again: an earlier run claimed it and never recorded SMTP's
	// acceptance. Its SMTP exchange failed or was cut (the worker died), so
	// the message may or may not have gone out; SMTP cannot tell, and the
	// send is made again.
	Again
	// Sent: an earlier run's message was accepted by SMTP; nothing to do.
	Sent
)

// ClaimSend records, in tx, that task taskID is about to send template to
// recipient, and reports whether an earlier run of the task claimed or
// finished the same send. The row stays locked until tx ends, so concurrent
// runs of one task take turns; tx should end before SMTP starts, and
// MarkSent records the outcome.
func ClaimSend(ctx context.Context, tx sqlx.ExtContext, taskID, recipient, template string) (Claim, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO sent_emails (task_id, recipient, template) VALUES ($1, $2, $3)
		ON CONFLICT (task_id) DO NOTHING`, taskID, recipient, template)
	if err != nil {
		return 0, fmt.Errorf("claim email: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return First, nil
	}
	res, err = tx.ExecContext(ctx, `UPDATE sent_emails SET attempts = attempts + 1 WHERE task_id = $1 AND sent_at IS NULL`, taskID)
	if err != nil {
		return 0, fmt.Errorf("claim email: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return Again, nil
	}
	return Sent, nil
}

// MarkSent records that SMTP accepted task taskID's message.
func MarkSent(ctx context.Context, db sqlx.ExecerContext, taskID string) error {
	if _, err := db.ExecContext(ctx, `UPDATE sent_emails SET sent_at = now() WHERE task_id = $1`, taskID); err != nil {
		return fmt.Errorf("record email sent: %w", err)
	}
	return nil
}
