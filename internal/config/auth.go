package config

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Auth holds the identity secrets and switches of cmd/api.
type Auth struct {
	// JWTSigningKey signs access tokens (HS256); JWTPreviousSigningKey, when
	// set, still verifies tokens signed before a rotation.
	JWTSigningKey         []byte
	JWTPreviousSigningKey []byte
	// TOTPEncryptionKey encrypts TOTP secrets at rest (AES-256-GCM).
	TOTPEncryptionKey []byte
	// RefreshCookie hands the refresh token to browsers as an HttpOnly,
	// Secure, SameSite=Strict cookie instead of in the JSON body.
	RefreshCookie bool
}

func loadAuth(l *Loader) Auth {
	a := Auth{
		JWTSigningKey:         l.Key("JWT_SIGNING_KEY", true, 32, 0),
		JWTPreviousSigningKey: l.Key("JWT_PREVIOUS_SIGNING_KEY", false, 32, 0),
		TOTPEncryptionKey:     l.Key("TOTP_ENCRYPTION_KEY", true, 32, 32),
		RefreshCookie:         l.OneOf("AUTH_REFRESH_COOKIE", "false", "true", "false") == "true",
	}
	return a
}

// Key returns a base64-encoded secret (standard or URL alphabet, padding
// optional) decoded, recording it when required and missing, malformed, or
// not between min and max bytes (max 0: no upper bound). Generate one with
// `keelctl gen-keys`.
func (l *Loader) Key(key string, required bool, min, max int) []byte {
	v, ok := l.lookup(key)
	if !ok {
		if required {
			l.fail(key, "is required (base64 of %d random bytes; `keelctl gen-keys` prints one)", min)
		}
		return nil
	}
	b, err := decodeKey(v)
	switch {
	case err != nil:
		l.fail(key, "must be base64 (`keelctl gen-keys` prints one)")
	case len(b) < min:
		l.fail(key, "must decode to at least %d bytes, got %d", min, len(b))
	case max > 0 && len(b) > max:
		l.fail(key, "must decode to exactly %d bytes, got %d", max, len(b))
	default:
		return b
	}
	return nil
}

func decodeKey(v string) ([]byte, error) {
	v = strings.TrimRight(v, "=")
	if b, err := base64.RawStdEncoding.DecodeString(v); err == nil {
		return b, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("not base64")
	}
	return b, nil
}

// Seed is what `keelctl seed-demo` needs: the application's database
// connection (it writes through RLS like the API does).
func (c *Ctl) Seed() (Postgres, error) {
	l := NewLoader(c.l.get)
	p := loadPostgres(l)
	return p, l.Err()
}
