package postgres

import (
	"errors"

	"github.com/lib/pq"
)

// AssumeQuery is the statement that checks one assumption of a one-message
// write: $1 is whether it holds, $2 names it. When $1 is not true it raises
// SQLSTATE KL409 (IsAssumptionFailed), which rolls the message's implicit
// transaction back whole (migration 00760).
const AssumeQuery = `SELECT keel_assume($1, $2)`

// IsAssumptionFailed reports keel_assume's error: a one-message write ran
// on an assumption that no longer held, and nothing of it was kept.
func IsAssumptionFailed(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "KL409"
}

// IsStaleStatement reports a message that failed on a statement missing on
// its connection (or already there): a one-message write that failed so
// rolled back whole, Message.Close drops the connection, and the write may
// run again.
func IsStaleStatement(err error) bool { return isStaleStatement(err) }
