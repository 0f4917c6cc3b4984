package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/keelhq/keel/internal/tenant"
)

// AccessTokenTTL is how long an access token is accepted.
const AccessTokenTTL = 15 * time.Minute

// SupportAccessTTL is the longest a support-access (impersonation) token
// lives; it is never refreshed.
const SupportAccessTTL = 30 * time.Minute

// Audience is the aud claim of Keel's access tokens.
const Audience = "keel-api"

// Claims are an access token's claims. Session (sid) is the login the
// token was issued to: its refresh-token family. Operations on the login
// itself (switch-org, a password change that keeps only this login) use it.
//
// AMR (RFC 8176) says how the login was authenticated: "pwd", plus "otp"
// and "mfa" after a TOTP code, or "mfa" alone after a recovery code.
// Act (RFC 8693) names the platform admin acting as the subject during
// support access; such a token has no sid (no refresh).
type Claims struct {
	Org     string   `json:"org"`
	Role    string   `json:"role"`
	Session string   `json:"sid,omitempty"`
	AMR     []string `json:"amr,omitempty"`
	Act     *Actor   `json:"act,omitempty"`
	jwt.RegisteredClaims
}

// Actor is the act claim: who is acting as the token's subject.
type Actor struct {
	Subject string `json:"sub"`
}

// AMR returns the amr claim of a login opened with secondFactor.
func AMR(secondFactor string) []string {
	switch secondFactor {
	case SecondFactorTOTP:
		return []string{"pwd", "otp", "mfa"}
	case SecondFactorRecovery:
		return []string{"pwd", "mfa"}
	}
	return []string{"pwd"}
}

// SecondFactor reads back what AMR wrote: SecondFactorTOTP,
// SecondFactorRecovery or "".
func (c *Claims) SecondFactor() string {
	otp, mfa := false, false
	for _, m := range c.AMR {
		otp = otp || m == "otp"
		mfa = mfa || m == "mfa"
	}
	switch {
	case otp:
		return SecondFactorTOTP
	case mfa:
		return SecondFactorRecovery
	}
	return ""
}

// Token is what an access token says: its subject, organization and role,
// its login (Session; uuid.Nil for none), the login's second factor, and,
// for support access, the acting platform admin (Actor) and a TTL shorter
// than the issuer's (0: the issuer's).
type Token struct {
	User, Org    uuid.UUID
	Role         string
	Session      uuid.UUID
	SecondFactor string
	Actor        uuid.UUID
	TTL          time.Duration
}

// Issuer signs and verifies access tokens with HMAC-SHA256. It signs with the
// current key and verifies with the current or the previous one, chosen by
// the kid header, so keys rotate without logging everyone out: deploy with
// JWT_PREVIOUS_SIGNING_KEY set to the old key for one access-token lifetime.
// Its tokens carry its name as iss, and it accepts no other: two
// deployments that share a key (staging and production, say) still refuse
// each other's tokens.
type Issuer struct {
	key, prev    []byte
	kid, prevKid string
	name         string
	now          func() time.Time
	parser       *jwt.Parser
	// verified remembers tokens that passed Verify, so the JWT is parsed
	// and its HMAC checked once per token, not on every request: on GET /me
	// that work was an eighth of the api's CPU. A hit is the same string
	// that verified (same key, same claims); only its expiry is checked
	// again. The cache lives in the process, so a key rotation (a restart)
	// empties it.
	verified *lru.Cache[string, Claims]
	TTL      time.Duration
}

// verifiedTokens bounds the cache of verified tokens: at about 0.5 KB an
// entry, a few MB for the active tokens of a busy instance; beyond it the
// least recently used are parsed again.
const verifiedTokens = 8192

// NewIssuer returns an Issuer named name (the iss claim, JWT_ISSUER);
// previous may be nil.
func NewIssuer(current, previous []byte, name string) (*Issuer, error) {
	if len(current) < 32 {
		return nil, errors.New("jwt signing key must be at least 32 bytes")
	}
	if name == "" {
		return nil, errors.New("jwt issuer must not be empty")
	}
	cache, err := lru.New[string, Claims](verifiedTokens)
	if err != nil {
		return nil, err
	}
	i := &Issuer{key: current, kid: keyID(current), prev: previous, name: name, now: time.Now, TTL: AccessTokenTTL, verified: cache}
	if len(previous) > 0 {
		i.prevKid = keyID(previous)
	}
	// Only HS256 is accepted: "none" and asymmetric algorithms are refused
	// before the key is even looked at.
	i.parser = jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(Audience), jwt.WithIssuer(name), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return i.now() }), jwt.WithLeeway(leeway))
	return i, nil
}

func keyID(k []byte) string {
	h := sha256.Sum256(k)
	return hex.EncodeToString(h[:4])
}

// SetClock makes the issuer sign and check expiry by now instead of the
// system clock; tests that must see a token expire drive it.
func (i *Issuer) SetClock(now func() time.Time) { i.now = now }

// Issue returns a signed access token for user in org with role, belonging
// to the login session (a refresh-token family; uuid.Nil for none).
func (i *Issuer) Issue(user, org uuid.UUID, role string, session uuid.UUID) (string, error) {
	return i.IssueToken(Token{User: user, Org: org, Role: role, Session: session})
}

// IssueToken returns a signed access token saying t.
func (i *Issuer) IssueToken(t Token) (string, error) {
	now := i.now()
	ttl := i.TTL
	if t.TTL > 0 {
		ttl = t.TTL
	}
	switch {
	case t.Actor == uuid.Nil && ttl > i.TTL:
		ttl = i.TTL
	case t.Actor != uuid.Nil && ttl > SupportAccessTTL:
		return "", fmt.Errorf("a support-access token lives at most %s", SupportAccessTTL)
	}
	c := Claims{Role: t.Role, AMR: AMR(t.SecondFactor), RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    i.name,
		Subject:   t.User.String(),
		Audience:  jwt.ClaimStrings{Audience},
		ID:        uuid.NewString(),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	if t.Org != uuid.Nil {
		c.Org = t.Org.String()
	}
	if t.Session != uuid.Nil {
		c.Session = t.Session.String()
	}
	if t.Actor != uuid.Nil {
		if t.Session != uuid.Nil {
			return "", errors.New("a support-access token has no session")
		}
		c.Act = &Actor{Subject: t.Actor.String()}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = i.kid
	return tok.SignedString(i.key)
}

// leeway is the clock skew Verify tolerates on exp and iat.
const leeway = 5 * time.Second

// Verify parses and checks an access token and returns its claims. The
// caller must not modify them.
func (i *Issuer) Verify(token string) (*Claims, error) {
	if c, ok := i.verified.Get(token); ok {
		if c.ExpiresAt != nil && i.now().Before(c.ExpiresAt.Add(leeway)) {
			return &c, nil
		}
		i.verified.Remove(token)
	}
	c, err := i.verify(token)
	if err != nil {
		return nil, err
	}
	i.verified.Add(token, *c)
	return c, nil
}

func (i *Issuer) verify(token string) (*Claims, error) {
	var c Claims
	_, err := i.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		switch {
		case kid == i.kid:
			return i.key, nil
		case i.prevKid != "" && kid == i.prevKid:
			return i.prev, nil
		}
		return nil, fmt.Errorf("unknown key id %q", kid)
	})
	if err != nil {
		return nil, err
	}
	if _, err := uuid.Parse(c.Subject); err != nil {
		return nil, errors.New("bad sub claim")
	}
	if c.Session != "" {
		if _, err := uuid.Parse(c.Session); err != nil {
			return nil, errors.New("bad sid claim")
		}
	}
	if c.Act != nil {
		if _, err := uuid.Parse(c.Act.Subject); err != nil || c.Session != "" {
			return nil, errors.New("bad act claim")
		}
	}
	// A user who belongs to no organization holds a token with neither.
	if c.Org == "" && c.Role == "" {
		return &c, nil
	}
	if _, err := uuid.Parse(c.Org); err != nil {
		return nil, errors.New("bad org claim")
	}
	if !tenant.ValidRole(c.Role) {
		return nil, errors.New("bad role claim")
	}
	return &c, nil
}
