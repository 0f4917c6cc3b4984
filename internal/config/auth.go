package config

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Auth holds the identity secrets and switches of cmd/api.
type Auth struct {
	// JWTSigningKey signs access tokens (HS256); JWTPreviousSigningKey, when
	// set, still verifies tokens signed before a rotation.
	JWTSigningKey         []byte
	JWTPreviousSigningKey []byte
	// TOTPEncryptionKey encrypts TOTP secrets at rest (AES-256-GCM).
	TOTPEncryptionKey []byte
	// JWTIssuer is the iss claim of access tokens, checked on every
	// verification; APP_BASE_URL unless JWT_ISSUER sets it.
	JWTIssuer string
	// RefreshCookie hands the refresh token to browsers as an HttpOnly,
	// Secure, SameSite=Strict cookie instead of in the JSON body.
	RefreshCookie bool
	// HashConcurrency bounds argon2id runs at once (AUTH_HASH_CONCURRENCY);
	// 0 means derived from the memory limit and cores when the API starts.
	HashConcurrency int
	// HashWait is how long a request waits for a hashing slot before 503
	// server_busy (AUTH_HASH_WAIT).
	HashWait time.Duration
	// Per-IP budgets of the anonymous endpoints that hash or mail:
	// AUTH_RATE_REGISTER, AUTH_RATE_PASSWORD_RESET (forgot and reset
	// together), AUTH_RATE_INVITATION_ACCEPT.
	RegisterRate, PasswordResetRate, InvitationAcceptRate Rate
}

func loadAuth(l *Loader, baseURL string) Auth {
	a := Auth{
		JWTSigningKey:         l.Key("JWT_SIGNING_KEY", true, 32, 0),
		JWTPreviousSigningKey: l.Key("JWT_PREVIOUS_SIGNING_KEY", false, 32, 0),
		TOTPEncryptionKey:     l.Key("TOTP_ENCRYPTION_KEY", true, 32, 32),
		JWTIssuer:             l.String("JWT_ISSUER", baseURL),
		RefreshCookie:         l.OneOf("AUTH_REFRESH_COOKIE", "false", "true", "false") == "true",
		HashConcurrency:       l.Int("AUTH_HASH_CONCURRENCY", 0, 0, 1024),
		HashWait:              l.Duration("AUTH_HASH_WAIT", 2*time.Second, 10*time.Millisecond),
		RegisterRate:          l.Rate("AUTH_RATE_REGISTER", Rate{N: 20, Window: time.Hour}),
		PasswordResetRate:     l.Rate("AUTH_RATE_PASSWORD_RESET", Rate{N: 30, Window: time.Hour}),
		InvitationAcceptRate:  l.Rate("AUTH_RATE_INVITATION_ACCEPT", Rate{N: 60, Window: time.Hour}),
	}
	return a
}

// Rate is a budget of N requests per Window.
type Rate struct {
	N      int
	Window time.Duration
}

func (r Rate) String() string { return fmt.Sprintf("%d/%s", r.N, r.Window) }

// Rate reads a budget written N/duration, such as 20/1h or 5/10m.
func (l *Loader) Rate(key string, def Rate) Rate {
	v, ok := l.lookup(key)
	if !ok {
		return def
	}
	ns, ds, found := strings.Cut(v, "/")
	n, nerr := strconv.Atoi(strings.TrimSpace(ns))
	d, derr := time.ParseDuration(strings.TrimSpace(ds))
	if !found || nerr != nil || derr != nil || n < 1 || n > 1_000_000 || d < time.Second || d > 24*time.Hour {
		l.fail(key, "must be requests/duration such as 20/1h (1 to 1000000 requests, 1s to 24h), got %q", v)
		return def
	}
	return Rate{N: n, Window: d}
}

// TrustedProxies reads a comma-separated list of IP addresses and CIDRs.
// A prefix that covers every address is refused: it would let any client
// choose its own X-Forwarded-For.
func (l *Loader) TrustedProxies(key string) []string {
	var out []string
	for _, v := range l.List(key) {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				l.fail(key, "must be IP addresses or CIDRs such as 10.0.0.0/8, got %q", v)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Bits() == 0 {
			l.fail(key, "must not trust every address (%q): any client could then forge X-Forwarded-For", v)
			continue
		}
		out = append(out, v)
	}
	return out
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
