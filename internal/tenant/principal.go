// Package tenant is the kernel every tenant capability builds on: who is
// acting (Principal and roles), the tenant transaction that checks the
// organization and the caller's role inside the same transaction as the work
// (InOrg), and keyset paging of tenant lists. It knows organizations and
// memberships only as far as those checks need.
package tenant

import (
	"context"

	"github.com/google/uuid"
)

// Principal is who a request acts as: a user holding an access token, or an
// organization's API key. OrgID is uuid.Nil for a user who belongs to no
// organization yet.
type Principal struct {
	UserID   uuid.UUID // uuid.Nil for API keys
	OrgID    uuid.UUID
	Role     string    // the token's or key's role; InOrg re-reads a user's
	APIKeyID uuid.UUID // uuid.Nil for users
	TokenID  string    // the access token's jti
	// SessionID is the login an access token belongs to (its refresh-token
	// family, the token's sid); uuid.Nil for API keys.
	SessionID uuid.UUID
	// SecondFactor is how the token's login passed its second factor: ""
	// (none), "totp" or "recovery_code" (auth.SecondFactor*).
	SecondFactor string
	// ActorID is the platform admin acting as UserID during support access
	// (the token's act claim); uuid.Nil otherwise. Such a principal's
	// writes are audited with both, and it cannot reach /admin or change
	// the user's credentials.
	ActorID uuid.UUID
}

// SupportAccess reports whether a platform admin is acting as the user.
func (p *Principal) SupportAccess() bool { return p != nil && p.ActorID != uuid.Nil }

// IsUser reports whether a user (not an API key) is acting.
func (p *Principal) IsUser() bool { return p != nil && p.UserID != uuid.Nil }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the request's principal, nil when unauthenticated.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Roles of a membership, from most to least powerful.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

var roleRank = map[string]int{RoleOwner: 3, RoleAdmin: 2, RoleMember: 1}

// ValidRole reports whether r is a role.
func ValidRole(r string) bool { return roleRank[r] > 0 }

// RoleAtLeast reports whether role r is at least min.
func RoleAtLeast(r, min string) bool { return roleRank[r] >= roleRank[min] && roleRank[r] > 0 }
