package tenant

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Errors InOrg and CheckActive answer with; capabilities reuse them so a
// client sees one code for one condition.
var (
	ErrSuspended  = apperr.New(apperr.Forbidden, "organization_suspended", "This organization is suspended; contact support.")
	ErrNoOrg      = apperr.New(apperr.Forbidden, "no_organization", "You belong to no organization; create one or accept an invitation.")
	ErrForbidden  = apperr.New(apperr.Forbidden, "forbidden", "Your role does not allow this.")
	ErrNotMember  = apperr.New(apperr.Forbidden, "not_a_member", "You are no longer a member of this organization.")
	ErrOrgGone    = apperr.New(apperr.Unauthenticated, "unauthenticated", "The organization no longer exists.")
	ErrUserOnly   = apperr.New(apperr.Forbidden, "user_required", "This endpoint needs a user's access token, not an API key.")
	errNoDatabase = errors.New("tenant: InOrg needs a database")
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
	return postgres.InTx(ctx, db, p.OrgID, func(tx *sqlx.Tx) error {
		role, err := callerRole(ctx, tx, p)
		if err != nil {
			return err
		}
		if !RoleAtLeast(role, min) {
			return ErrForbidden
		}
		return fn(tx, role)
	})
}

// callerRoleQuery reads the organization's state and the user's membership
// in one statement; it needs the tenant set (memberships is under RLS).
const callerRoleQuery = `SELECT o.suspended_at IS NOT NULL, m.role
		FROM organizations o LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = $2
		WHERE o.id = $1`

// callerRole runs callerRoleQuery in tx.
func callerRole(ctx context.Context, tx sqlx.QueryerContext, p *Principal) (string, error) {
	var (
		suspended bool
		role      *string
	)
	err := tx.QueryRowxContext(ctx, callerRoleQuery, p.OrgID, p.UserID).Scan(&suspended, &role)
	found := true
	if errors.Is(postgres.Translate(err), postgres.ErrNotFound) {
		found = false
	} else if err != nil {
		return "", err
	}
	return roleOf(p, found, suspended, role)
}

// roleOf decides the caller's role from callerRoleQuery's answer: the
// organization's row (found, suspended) and the user's membership role.
func roleOf(p *Principal, found, suspended bool, role *string) (string, error) {
	switch {
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
