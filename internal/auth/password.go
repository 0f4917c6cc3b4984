package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/argon2"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/tenant"
)

// Password length bounds, in characters. The maximum bounds the work an
// attacker can make argon2 do per request.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 128
)

// PasswordParams are argon2id's cost parameters.
type PasswordParams struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen int
	KeyLen  uint32
}

// OWASPParams is the OWASP Password Storage Cheat Sheet's argon2id
// configuration: 19 MiB, 2 iterations, 1 degree of parallelism.
var OWASPParams = PasswordParams{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// HashPassword returns the PHC string of password under p.
func HashPassword(password string, p PasswordParams) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

var errBadHash = errors.New("malformed password hash")

// VerifyPassword reports whether password matches the PHC string, using the
// parameters stored in it so costs can be raised without invalidating old
// hashes.
func VerifyPassword(password, encoded string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var p PasswordParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return false, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is verified against when a login names no account, so a wrong
// email costs the same time as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("keel-timing-equaliser-not-a-password", OWASPParams)
	return h
})

//go:embed common-passwords.txt
var commonPasswordsTxt string

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	m := map[string]struct{}{}
	s := bufio.NewScanner(strings.NewReader(commonPasswordsTxt))
	for s.Scan() {
		if w := strings.TrimSpace(s.Text()); w != "" && !strings.HasPrefix(w, "#") {
			m[strings.ToLower(w)] = struct{}{}
		}
	}
	return m
})

// CheckPassword returns a validation or password_too_weak error when password
// may not be used. field names the request field for the error.
func CheckPassword(field, password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return apperr.Validation(apperr.FieldError{Field: field, Message: "must be valid UTF-8"})
	case n < MinPasswordLen:
		return apperr.Validation(apperr.FieldError{Field: field, Message: fmt.Sprintf("must be at least %d characters", MinPasswordLen)})
	case n > MaxPasswordLen:
		return apperr.Validation(apperr.FieldError{Field: field, Message: fmt.Sprintf("must be at most %d characters", MaxPasswordLen)})
	}
	if isCommonPassword(password) {
		return &apperr.Error{Kind: apperr.Invalid, Code: "password_too_weak",
			Message: "This password is too common; choose one that is harder to guess.",
			Fields:  []apperr.FieldError{{Field: field, Message: "is a commonly used password"}}}
	}
	return nil
}

func isCommonPassword(p string) bool {
	l := strings.ToLower(p)
	if _, ok := commonPasswords()[l]; ok {
		return true
	}
	// One character repeated, or a run of the same short chunk, is as weak
	// as any list entry ("aaaaaaaaaaaa", "abcabcabcabc").
	for size := 1; size <= 4; size++ {
		if len(l)%size == 0 && strings.Repeat(l[:size], len(l)/size) == l {
			return true
		}
	}
	return false
}

// errInvalidPassword answers a wrong password outside login.
var errInvalidPassword = apperr.New(apperr.Forbidden, "invalid_password", "The password is wrong.")

// verifyPassword is the one way to check a signed-in user's password
// outside login (disabling 2FA, changing the password or email, enabling
// 2FA). It returns nil when password is u's; otherwise an error for the
// client: 403 invalid_password, 429 too_many_attempts with Retry-After
// while the account (or meta.IP) is locked, 503 server_busy when no
// hashing slot frees up in time, 503 password_check_unavailable when Redis
// is unreachable. Attempts count into the same per-account and per-IP
// throttle as login, before the hash runs, so a stolen session cannot
// guess faster than a login can, and a lockout from either side refuses
// both. A right password clears the account's failures, as a login does.
//
// Call it before opening a transaction: it may wait up to AUTH_HASH_WAIT
// for a slot and then runs argon2id, and neither should hold a database
// connection or a row lock. u needs Email and PasswordHash; re-read the
// user in the transaction and check passwordUnchanged, so that a password
// changed in between does not count as checked.
func (s *Service) verifyPassword(ctx context.Context, u *User, password string, meta audit.Meta) error {
	att, err := s.Throttle.Begin(ctx, u.Email, meta.IP)
	if err != nil {
		return &apperr.Error{Kind: apperr.Unavailable, Code: "password_check_unavailable", RetryAfter: 5, Err: err,
			Message: "Password checks are briefly unavailable; try again in a few seconds."}
	}
	if att.RetryAfter > 0 {
		return tooMany(att.RetryAfter)
	}
	ok, err := s.Hasher.Verify(ctx, password, u.PasswordHash)
	if err != nil {
		return cancelAttempt(ctx, att, err)
	}
	if !ok {
		return s.failAttempt(ctx, att, u, meta, errInvalidPassword)
	}
	if err := att.Succeeded(ctx); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("reset login throttle")
	}
	return nil
}

// passwordUnchanged returns errInvalidPassword when locked (the user as
// re-read and locked in a transaction) no longer has the password hash that
// verifyPassword checked in checked: it was changed in between.
func passwordUnchanged(checked, locked *User) error {
	if subtle.ConstantTimeCompare([]byte(checked.PasswordHash), []byte(locked.PasswordHash)) != 1 {
		return errInvalidPassword
	}
	return nil
}

// reauthenticate checks the password of userID, for an operation that needs
// it on top of an access token, and returns the user it checked. It runs
// before the operation's transaction: the check may wait for a hashing slot
// and must hold neither a connection nor a row lock meanwhile. The
// transaction then calls passwordUnchanged with the row it locked.
func (s *Service) reauthenticate(ctx context.Context, userID uuid.UUID, password string, meta audit.Meta) (*User, error) {
	u, err := s.Users.UserByID(ctx, s.DB, userID, false)
	if err != nil {
		return nil, err
	}
	if err := s.verifyPassword(ctx, u, password, meta); err != nil {
		return nil, err
	}
	return u, nil
}

// lockUser reads the caller's account with a row lock inside tx, after
// checking that the caller's organization is active: account operations are
// refused to a member of a suspended organization too.
func (s *Service) lockUser(ctx context.Context, tx *sqlx.Tx, p *tenant.Principal) (*User, error) {
	if err := tenant.CheckActive(ctx, tx, p.OrgID); err != nil {
		return nil, err
	}
	return s.Users.UserByID(ctx, tx, p.UserID, true)
}
