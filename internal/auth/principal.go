package auth

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
	Role     string
	APIKeyID uuid.UUID // uuid.Nil for users
	TokenID  string    // the access token's jti
}

// IsUser reports whether a user (not an API key) is acting.
func (p *Principal) IsUser() bool { return p.UserID != uuid.Nil }

// Meta is what the audit log records about a request's origin.
type Meta struct {
	IP        string
	UserAgent string
}

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
