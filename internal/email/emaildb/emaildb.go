// Package emaildb stores sent_emails, the record of which emails were
// handed to SMTP, by task ID, so a task that runs again mails nothing twice.
// sent_emails is a platform table (no org_id, no Row Level Security); the
// email handler writes it in its task's transaction, whichever tenant that
// transaction set.
package emaildb

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// RecordSend records, in tx, that task taskID sends template to recipient,
// and reports whether this is the first record for the task: false means an
// earlier run of the task sent it. The row stays locked until tx ends, so
// tx should last until SMTP accepted the message and roll back if it did
// not.
func RecordSend(ctx context.Context, tx sqlx.ExtContext, taskID, recipient, template string) (first bool, err error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO sent_emails (task_id, recipient, template) VALUES ($1, $2, $3)
		ON CONFLICT (task_id) DO NOTHING`, taskID, recipient, template)
	if err != nil {
		return false, fmt.Errorf("record email: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
