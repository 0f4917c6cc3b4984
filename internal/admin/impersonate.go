package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Refusals of support access.
var (
	ErrImpersonateAdmin = apperr.New(apperr.Forbidden, "cannot_impersonate_admin",
		"A platform admin cannot be impersonated.")
	ErrImpersonateSelf = apperr.New(apperr.Conflict, "cannot_impersonate_self",
		"You cannot open support access to your own account.")
	ErrImpersonateDisabled = apperr.New(apperr.Conflict, "user_disabled",
		"This user is disabled; enable the account before opening support access to it.")
	ErrImpersonateNotMember = apperr.New(apperr.Unprocessable, "not_a_member",
		"The user is not a member of that organization.")
	ErrImpersonateSuspended = apperr.New(apperr.Conflict, "organization_suspended",
		"That organization is suspended; its members' tokens are refused, support access included.")
)

// SupportAccess is a support-access token and what it stands for. It has
// no refresh token: when it expires the admin asks again, with a reason.
type SupportAccess struct {
	AccessToken string
	ExpiresAt   time.Time
	UserID      uuid.UUID
	OrgID       uuid.UUID // uuid.Nil: the user belongs to no organization
	Role        string    // "" without an organization
	AdminID     uuid.UUID
}

// Impersonate is POST /admin/users/{id}/impersonate: a platform admin
// acts as the user for at most auth.SupportAccessTTL (30 minutes), for
// reason. The token names the admin (act claim) beside the user, has no
// session and so no refresh, is refused on /admin and on every route
// that changes the user's credentials, and every request made with it is
// audited with both identities (tenant.InOrg).
//
// The organization is orgID when given (the user must be a member, and it
// must not be suspended), else the user's oldest membership whose
// organization is not suspended, else none. Refused: a platform admin (403
// cannot_impersonate_admin), oneself (409 cannot_impersonate_self), a
// disabled user (409 user_disabled), an organization the user is not in
// (422 not_a_member) or a suspended one (409 organization_suspended).
//
// Audited in one transaction with the token's signing: support_access.started
// in the token's organization (actor the admin, acting for the user, with
// the reason and expiry), which the organization's owners read in its
// audit log, and a platform row admin.support_access_started.
func (s *Service) Impersonate(ctx context.Context, a *Admin, meta audit.Meta, userID uuid.UUID, orgID uuid.UUID, reason string) (*SupportAccess, error) {
	reason, err := checkReason(reason, true)
	if err != nil {
		return nil, err
	}
	if userID == a.UserID {
		return nil, ErrImpersonateSelf
	}
	var out *SupportAccess
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		sa, err := s.supportTarget(ctx, tx, userID, orgID)
		if err != nil {
			return err
		}
		sa.AdminID = a.UserID
		sa.AccessToken, err = s.Tokens.IssueToken(auth.Token{User: sa.UserID, Org: sa.OrgID, Role: sa.Role,
			Actor: a.UserID, TTL: auth.SupportAccessTTL})
		if err != nil {
			return fmt.Errorf("issue support-access token: %w", err)
		}
		// The token is only handed out once its audit rows commit.
		// The answer and the audit row state the expiry the token really
		// carries (the issuer keeps its own clock).
		claims, err := s.Tokens.Verify(sa.AccessToken)
		if err != nil {
			return fmt.Errorf("read back support-access token: %w", err)
		}
		sa.ExpiresAt = claims.ExpiresAt.UTC()
		if err := recordSupportAccess(ctx, tx, a, meta, sa, reason); err != nil {
			return err
		}
		out = sa
		return nil
	})
	return out, err
}

// supportTarget checks the user may be impersonated and picks the
// organization and role of the token.
func (s *Service) supportTarget(ctx context.Context, tx *sqlx.Tx, userID, orgID uuid.UUID) (*SupportAccess, error) {
	u, err := s.Store.GetUser(ctx, tx, userID)
	if errors.Is(err, postgres.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	switch {
	case u.PlatformAdmin:
		return nil, ErrImpersonateAdmin
	case u.DisabledAt != nil:
		return nil, ErrImpersonateDisabled
	}
	ms, err := s.Store.UserMemberships(ctx, tx, userID)
	if err != nil {
		return nil, fmt.Errorf("user memberships: %w", err)
	}
	sa := &SupportAccess{UserID: userID}
	for _, m := range ms { // oldest first
		switch {
		case orgID != uuid.Nil && m.OrgID == orgID && m.Suspended:
			return nil, ErrImpersonateSuspended
		case orgID != uuid.Nil && m.OrgID != orgID, m.Suspended:
			continue
		}
		sa.OrgID, sa.Role = m.OrgID, m.Role
		return sa, nil
	}
	if orgID != uuid.Nil {
		return nil, ErrImpersonateNotMember
	}
	return sa, nil
}

// recordSupportAccess writes the audit rows of a support access: the
// organization's (when the token has one) and the platform's.
func recordSupportAccess(ctx context.Context, tx *sqlx.Tx, a *Admin, meta audit.Meta, sa *SupportAccess, reason string) error {
	details := map[string]any{"reason": reason, "expires_at": sa.ExpiresAt.UTC().Format(time.RFC3339)}
	if sa.OrgID != uuid.Nil {
		admin, user := a.UserID, sa.UserID
		e := audit.Entry{OrgID: sa.OrgID, ActorUserID: &admin, ActingForUserID: &user, Action: "support_access.started",
			TargetType: "user", TargetID: user.String(), IP: meta.IP, UserAgent: meta.UserAgent}
		if err := audit.Record(ctx, tx, e.WithDetails(details)); err != nil {
			return err
		}
	}
	details["organization_id"] = nil
	if sa.OrgID != uuid.Nil {
		details["organization_id"] = sa.OrgID.String()
	}
	return record(ctx, tx, a, meta, uuid.Nil, "admin.support_access_started", "user", sa.UserID.String(), details)
}
