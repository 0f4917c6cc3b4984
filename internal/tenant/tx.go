package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Errors InOrg and CheckActive answer with; capabilities reuse them so a
// client sees one code for one condition.
var (
	ErrSuspended = apperr.New(apperr.Forbidden, "organization_suspended", "This organization is suspended; contact support.")
	ErrNoOrg     = apperr.New(apperr.Forbidden, "no_organization", "You belong to no organization; create one or accept an invitation.")
	ErrForbidden = apperr.New(apperr.Forbidden, "forbidden", "Your role does not allow this.")
	ErrNotMember = apperr.New(apperr.Forbidden, "not_a_member", "You are no longer a member of this organization.")
	ErrOrgGone   = apperr.New(apperr.Unauthenticated, "unauthenticated", "The organization no longer exists.")
	ErrUserOnly  = apperr.New(apperr.Forbidden, "user_required", "This endpoint needs a user's access token, not an API key.")
	// ErrUserDisabled refuses every token of a user a platform admin
	// disabled, from the moment the disabling commits.
	ErrUserDisabled = apperr.New(apperr.Unauthenticated, "account_disabled", "This account is disabled; contact support.")
	errNoDatabase   = errors.New("tenant: InOrg needs a database")
)

// InOrg runs fn in one transaction scoped to the caller's organization
// (app.org_id set for Row Level Security), after checking, in that same
// transaction and with one query, that the organization exists and is not
// suspended and that the caller holds at least min. A user's role is re-read
// from the membership, since an access token can be up to 15 minutes older
// than a role change or a removal; an API key acts with its own role. fn
// gets the caller's current role.
//
// The checks and the work share a snapshot, so a suspension or demotion that
// commits before the transaction starts is always seen, and the request
// costs one transaction.
func InOrg(ctx context.Context, db *sqlx.DB, p *Principal, min string, fn func(tx *sqlx.Tx, role string) error) error {
	if db == nil {
		return errNoDatabase
	}
	if p == nil || p.OrgID == uuid.Nil {
		return ErrNoOrg
	}
	// The tenant setting and the caller check go in one message right
	// after BEGIN, the check prepared on its connection
	// (postgres.InTxWith): on a short write, the round trips and the
	// planning were most of the transaction's cost (docs/benchmarks.md).
	var role string
	check := []postgres.Stmt{{Query: callerRoleQuery, Args: []any{p.OrgID, p.UserID}}}
	return postgres.InTxWith(ctx, db, p.OrgID, check, func(rows *sqlx.Rows) error {
		var err error
		role, err = readCaller(rows, p)
		return err
	}, func(tx *sqlx.Tx) error {
		if !RoleAtLeast(role, min) {
			return ErrForbidden
		}
		if err := fn(tx, role); err != nil {
			return err
		}
		if p.SupportAccess() {
			return recordSupportAccess(ctx, tx, p)
		}
		return nil
	})
}

// recordSupportAccess writes, in the transaction of the work, the audit row
// of one tenant transaction run under support access: the platform admin as
// actor, the user acted for, and whether it wrote (a transaction that
// changed nothing has no transaction ID yet). Every capability's work goes
// through InOrg, so no write made with a support-access token escapes the
// audit log, whether or not its capability audits the action itself. The
// row is inserted here rather than through package audit, which builds on
// this one.
func recordSupportAccess(ctx context.Context, tx *sqlx.Tx, p *Principal) error {
	var wrote bool
	if err := tx.QueryRowxContext(ctx, `SELECT pg_current_xact_id_if_assigned() IS NOT NULL`).Scan(&wrote); err != nil {
		return fmt.Errorf("support access audit: %w", err)
	}
	action := "support_access.read"
	if wrote {
		action = "support_access.write"
	}
	details, _ := json.Marshal(map[string]string{"route": logging.Route(ctx)})
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (id, org_id, actor_user_id, acting_for_user_id, action,
		target_type, target_id, request_id, details) VALUES ($1, $2, $3, $4, $5, 'user', $6, $7, $8)`,
		postgres.NewID(), p.OrgID, p.ActorID, p.UserID, action, p.UserID.String(), logging.RequestID(ctx), details)
	if err != nil {
		return fmt.Errorf("support access audit: %w", err)
	}
	return nil
}

// callerRoleQuery reads the organization's state, the user's membership
// and whether the user is disabled in one statement; it needs the tenant
// set (memberships is under RLS). For an API key ($2 is the nil UUID) the
// user part reads nothing: a disabled user's keys are revoked instead.
const callerRoleQuery = `SELECT o.suspended_at IS NOT NULL, m.role,
		COALESCE((SELECT u.disabled_at IS NOT NULL FROM users u WHERE u.id = $2), false)
		FROM organizations o LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = $2
		WHERE o.id = $1`

// readCaller reads a message's first two result sets, the tenant
// setting's and callerRoleQuery's, and decides the caller's role from the
// second; rows are left at its end.
func readCaller(rows *sqlx.Rows, p *Principal) (string, error) {
	for rows.Next() { // set_config's
	}
	if !rows.NextResultSet() {
		return "", fmt.Errorf("caller check: no result: %w", rowsErr(rows))
	}
	var (
		found               bool
		suspended, disabled bool
		role                *string
	)
	for rows.Next() {
		if err := rows.Scan(&suspended, &role, &disabled); err != nil {
			return "", err
		}
		found = true
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return roleOf(p, found, suspended, disabled, role)
}

// roleOf decides the caller's role from callerRoleQuery's answer: the
// organization's row (found, suspended), whether the user is disabled and
// the user's membership role.
func roleOf(p *Principal, found, suspended, disabled bool, role *string) (string, error) {
	switch {
	case disabled:
		return "", ErrUserDisabled
	case !found:
		return "", ErrOrgGone
	case suspended:
		return "", ErrSuspended
	case !p.IsUser():
		return p.Role, nil
	case role == nil:
		return "", ErrNotMember
	}
	return *role, nil
}

// CheckActive returns ErrSuspended when orgID is suspended and ErrOrgGone
// when it no longer exists; uuid.Nil (no organization) passes. Operations
// that act on the account rather than inside an organization call it in
// their own transaction, so a member of a suspended organization is refused
// there too.
func CheckActive(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) error {
	if orgID == uuid.Nil {
		return nil
	}
	var suspended bool
	err := q.QueryRowxContext(ctx, `SELECT suspended_at IS NOT NULL FROM organizations WHERE id = $1`, orgID).Scan(&suspended)
	if errors.Is(postgres.Translate(err), postgres.ErrNotFound) {
		return ErrOrgGone
	}
	if err != nil {
		return err
	}
	if suspended {
		return ErrSuspended
	}
	return nil
}
