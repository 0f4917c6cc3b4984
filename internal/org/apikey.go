package org

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// NewAPIKey is a created key with its secret, which is shown only once.
type NewAPIKey struct {
	Key    *APIKey
	Secret string
}

// newAPIKeySecret returns keel_live_<prefix>_<secret>: the prefix (48 bits,
// hex) is stored in clear to find the key and to show which key is which;
// the secret (256 bits) is stored as SHA-256.
func newAPIKeySecret() (full, prefix string, hash []byte) {
	p := make([]byte, 6)
	sec := make([]byte, 32)
	_, _ = rand.Read(p)
	_, _ = rand.Read(sec)
	prefix = hex.EncodeToString(p)
	secret := base64.RawURLEncoding.EncodeToString(sec)
	h := sha256.Sum256([]byte(secret))
	return APIKeyPrefix + prefix + "_" + secret, prefix, h[:]
}

// parseAPIKey splits a presented key; ok is false when it has the wrong shape.
func parseAPIKey(raw string) (prefix, secret string, ok bool) {
	rest, found := strings.CutPrefix(raw, APIKeyPrefix)
	if !found {
		return "", "", false
	}
	prefix, secret, found = strings.Cut(rest, "_")
	if !found || len(prefix) != 12 || len(secret) < 20 || len(secret) > 100 {
		return "", "", false
	}
	return prefix, secret, true
}

// IsAPIKey reports whether a bearer credential is shaped like an API key
// rather than a JWT.
func IsAPIKey(raw string) bool { return strings.HasPrefix(raw, APIKeyPrefix) }

// CreateAPIKey makes a key acting with role (admin or member), working
// until expiresAt when it is not nil; admins and owners, with their own
// session. The caller is recorded as the key's creator: the key stops
// working when they leave the organization or fall below role. Keys cannot
// make keys, so a leaked one cannot outlive its revocation.
func (s *Service) CreateAPIKey(ctx context.Context, p *tenant.Principal, name, role string, expiresAt *time.Time, meta audit.Meta) (*NewAPIKey, error) {
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	if expiresAt != nil && !expiresAt.After(s.now()) {
		return nil, apperr.Validation(apperr.FieldError{Field: "expires_at", Message: "must be in the future"})
	}
	var out *NewAPIKey
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleAdmin, func(tx *sqlx.Tx, _ string) error {
		full, prefix, hash := newAPIKeySecret()
		k := &APIKey{ID: postgres.NewID(), OrgID: p.OrgID, Name: strings.TrimSpace(name), Role: role, Prefix: prefix, SecretHash: hash,
			CreatedBy: &p.UserID, ExpiresAt: expiresAt}
		if err := s.Store.CreateAPIKey(ctx, tx, k); err != nil {
			return err
		}
		out = &NewAPIKey{Key: k, Secret: full}
		details := map[string]string{"name": k.Name, "role": role, "prefix": prefix}
		if expiresAt != nil {
			details["expires_at"] = expiresAt.UTC().Format(time.RFC3339)
		}
		return record(ctx, tx, p, meta, "api_key.created", "api_key", k.ID.String(), details)
	})
	return out, err
}

// APIKeys lists live keys; admins and owners.
func (s *Service) APIKeys(ctx context.Context, p *tenant.Principal, pg tenant.Page) ([]APIKey, string, error) {
	return tenant.List(ctx, s.DB, p, pg, tenant.RoleAdmin, func(tx *sqlx.Tx, after *tenant.Cursor, limit int) ([]APIKey, error) {
		return s.Store.APIKeys(ctx, tx, p.OrgID, after, limit)
	}, func(k *APIKey) (time.Time, uuid.UUID) { return k.CreatedAt, k.ID })
}

// RevokeAPIKey revokes a key at once; admins and owners, with their own
// session (a key cannot revoke the keys of the people who could revoke it).
func (s *Service) RevokeAPIKey(ctx context.Context, p *tenant.Principal, id uuid.UUID, meta audit.Meta) error {
	if !p.IsUser() {
		return tenant.ErrUserOnly
	}
	return tenant.InOrg(ctx, s.DB, p, tenant.RoleAdmin, func(tx *sqlx.Tx, _ string) error {
		k, err := s.Store.RevokeAPIKey(ctx, tx, p.OrgID, id)
		if errors.Is(err, ErrNotFound) {
			return notFound("API key")
		}
		if err != nil {
			return err
		}
		return record(ctx, tx, p, meta, "api_key.revoked", "api_key", id.String(), map[string]string{"name": k.Name, "prefix": k.Prefix})
	})
}

var errBadAPIKey = apperr.New(apperr.Unauthenticated, "invalid_api_key", "The API key is invalid, expired or revoked.")

// AuthenticateAPIKey resolves a presented key to its organization and role,
// and records its use. A key is refused (401) when it is unknown, revoked
// or past its expiry, and when its creator is no longer a member of its
// organization or holds a lower role than the key: all from the one lookup
// statement, so a key costs no more than before.
func (s *Service) AuthenticateAPIKey(ctx context.Context, raw string) (*tenant.Principal, error) {
	prefix, secret, ok := parseAPIKey(raw)
	if !ok {
		return nil, errBadAPIKey
	}
	ref, err := s.Store.APIKeyByPrefix(ctx, s.DB, prefix)
	if errors.Is(err, ErrNotFound) {
		return nil, errBadAPIKey
	}
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(secret))
	if !equalDigest(h[:], ref.SecretHash) {
		return nil, errBadAPIKey
	}
	switch {
	case ref.ExpiresAt != nil && !s.now().Before(*ref.ExpiresAt):
		zerolog.Ctx(ctx).Info().Str("api_key_id", ref.ID.String()).Msg("api key refused: expired")
		return nil, errBadAPIKey
	case !tenant.RoleAtLeast(ref.CreatorRole, ref.Role):
		zerolog.Ctx(ctx).Info().Str("api_key_id", ref.ID.String()).Str("creator_role", ref.CreatorRole).
			Msg("api key refused: its creator left the organization or holds a lower role")
		return nil, errBadAPIKey
	}
	if err := postgres.InTx(ctx, s.DB, ref.OrgID, func(tx *sqlx.Tx) error {
		return s.Store.TouchAPIKey(ctx, tx, ref.OrgID, ref.ID)
	}); err != nil {
		// Recording last use must not fail the request it belongs to.
		zerolog.Ctx(ctx).Warn().Err(err).Msg("touch api key")
	}
	return &tenant.Principal{OrgID: ref.OrgID, Role: ref.Role, APIKeyID: ref.ID}, nil
}
