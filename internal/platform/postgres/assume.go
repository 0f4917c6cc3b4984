package postgres

import (
	"errors"

	"github.com/lib/pq"
)

// IsAssumptionFailed reports keel_assume's error: a one-message write ran
// on an assumption that no longer held, and nothing of it was kept. A
// guard is a statement `SELECT keel_assume(<condition>, '<name>')`, which
// raises SQLSTATE KL409 when the condition is not true and so rolls the
// message's implicit transaction back whole (migration 00760).
func IsAssumptionFailed(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "KL409"
}

// IsStaleStatement reports a message that failed on a statement missing on
// its connection (or already there): a one-message write that failed so
// rolled back whole, Message.Close drops the connection, and the write may
// run again.
func IsStaleStatement(err error) bool { return isStaleStatement(err) }
