package tenant

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// callerGuardQuery passes exactly when InOrg's caller check would let the
// caller act with at least one of the roles in $3 (a comma-separated list;
// empty for an API key, whose role is its own and checked before sending):
// the organization exists and is not suspended, the user is not disabled
// and is a member with one of those roles. Otherwise keel_assume raises.
const callerGuardQuery = `SELECT keel_assume(EXISTS (SELECT 1 FROM organizations o
		LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = $2
		WHERE o.id = $1 AND o.suspended_at IS NULL
		AND ($3 = '' OR m.role = ANY (string_to_array($3, ',')))
		AND NOT COALESCE((SELECT u.disabled_at IS NOT NULL FROM users u WHERE u.id = $2), false)), 'caller')`

// WriteOnce runs a short write as one simple-protocol message: the tenant
// setting, a guard of the caller (callerGuardQuery), then stmts, all in
// PostgreSQL's implicit transaction for a multi-statement message, each
// prepared on its connection (postgres.QueryMessage). A write that InOrg
// runs in seven round trips (BEGIN, the opening message, four statements,
// COMMIT) costs one: on the resources benchmark the api spent about a
// third less CPU on a create and PostgreSQL about a fifth less
// (docs/benchmarks.md).
//
// A message cannot branch, so what InOrg decides between statements is
// assumed and checked in SQL instead: stmts include a keel_assume guard
// for each assumption the caller made (the plan, a limit). When a guard
// fails, nothing of the message is kept and WriteOnce returns done = false
// with a nil error: the caller then runs the same write through InOrg,
// which reads, decides and answers exactly (a 403, a 402). So does a
// message that found one of its prepared statements missing on its
// connection (someone ran DISCARD or DEALLOCATE): it too rolled back whole,
// and its connection is dropped, as InOrg's transaction is run again.
// It also returns done = false, without sending anything, for what it does
// not cover: support access (audited per transaction) and an API key whose
// role is below min.
//
// read gets the rows at the first result set of stmts (the first of their
// statements that returns rows; lib/pq passes over the others) and reads
// what it needs, advancing with NextResultSet; WriteOnce reads past the
// rest, and the message's outcome is the first error of either. An error
// read must be returned wrapped (%w), so a failed guard is recognized. A
// write refused by the read-only billing trigger answers
// postgres.ErrPaymentRequired, as in InOrg.
func WriteOnce(ctx context.Context, db *sqlx.DB, p *Principal, min string, stmts []postgres.Stmt,
	read func(rows *sqlx.Rows) error) (done bool, err error) {
	if db == nil {
		return false, errNoDatabase
	}
	if p == nil || p.OrgID == uuid.Nil {
		return false, ErrNoOrg
	}
	roles := ""
	switch {
	case p.SupportAccess():
		return false, nil
	case p.IsUser():
		roles = rolesAtLeast(min)
	case !RoleAtLeast(p.Role, min):
		return false, nil
	}
	all := make([]postgres.Stmt, 0, len(stmts)+2)
	all = append(all, postgres.TenantStmt(p.OrgID),
		postgres.Stmt{Query: callerGuardQuery, Args: []any{p.OrgID, p.UserID, roles}})
	all = append(all, stmts...)
	msg, err := postgres.QueryMessage(ctx, db, all...)
	if err != nil {
		return assumed(err)
	}
	rows := msg.Rows
	err = func() error {
		for rows.Next() { // the tenant setting's
		}
		if !rows.NextResultSet() {
			return fmt.Errorf("one-message write: %w", rowsErr(rows))
		}
		for rows.Next() { // the guard's
		}
		if !rows.NextResultSet() { // no statement of stmts returns rows
			return rows.Err()
		}
		if read != nil {
			if err := read(rows); err != nil {
				return err
			}
		}
		for rows.Next() {
		}
		for rows.NextResultSet() {
			for rows.Next() {
			}
		}
		return rows.Err()
	}()
	msg.Close(err)
	if err != nil {
		return assumed(err)
	}
	return true, nil
}

// assumed is WriteOnce's answer for a message that failed with err.
func assumed(err error) (bool, error) {
	if postgres.IsAssumptionFailed(err) || postgres.IsStaleStatement(err) {
		return false, nil
	}
	return true, postgres.ReadOnly(err)
}

// rolesAtLeast lists the roles at least min, comma-separated.
func rolesAtLeast(min string) string {
	out := make([]string, 0, 3)
	for _, r := range []string{RoleOwner, RoleAdmin, RoleMember} {
		if RoleAtLeast(r, min) {
			out = append(out, r)
		}
	}
	return strings.Join(out, ",")
}
