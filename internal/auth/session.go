package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
	"github.com/rs/zerolog"
)

// LoginInput is a login attempt.
type LoginInput struct {
	Email, Password, TOTPCode string
}

// Login checks credentials (and the second factor when 2FA is on) under the
// throttle and opens a session in the user's first organization. The
// attempt is counted before the password is checked, so concurrent guesses
// get at most the throttle's limit of password checks.
func (s *Service) Login(ctx context.Context, in LoginInput, meta audit.Meta) (*Session, error) {
	email := strings.ToLower(strings.TrimSpace(in.Email))
	att, err := s.Throttle.Begin(ctx, email, meta.IP)
	if err != nil {
		s.Metrics.LoginFailed(LoginUnavailable)
		return nil, throttleDown(err)
	} else if att.RetryAfter > 0 {
		s.Metrics.LoginFailed(LoginThrottled)
		return nil, tooMany(att.RetryAfter)
	}
	u, err := s.Users.UserByEmail(ctx, s.DB, email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, cancelAttempt(ctx, att, err)
	}
	hash := dummyHash()
	if err == nil {
		hash = u.PasswordHash
	} else {
		u = nil
	}
	ok, err := s.Hasher.Verify(ctx, in.Password, hash)
	if err != nil {
		return nil, cancelAttempt(ctx, att, err)
	}
	if u == nil {
		s.Metrics.LoginFailed(LoginUnknownEmail)
		return nil, s.failAttempt(ctx, att, u, meta, errInvalidCredentials)
	}
	if !ok {
		s.Metrics.LoginFailed(LoginBadPassword)
		return nil, s.failAttempt(ctx, att, u, meta, errInvalidCredentials)
	}
	if u.EmailVerifiedAt == nil {
		s.Metrics.LoginFailed(LoginUnverified)
		return nil, cancelAttempt(ctx, att, apperr.New(apperr.Forbidden, "email_not_verified", "Verify your email address first; we can send the link again."))
	}
	// Told only after the right password, so the answer reveals nothing
	// to someone guessing.
	if u.DisabledAt != nil {
		s.Metrics.LoginFailed(LoginDisabled)
		return nil, cancelAttempt(ctx, att, errAccountDisabled)
	}
	factor := ""
	if u.TOTPEnabledAt != nil {
		if strings.TrimSpace(in.TOTPCode) == "" {
			s.Metrics.LoginFailed(LoginTOTPRequired)
			return nil, cancelAttempt(ctx, att, apperr.New(apperr.Unauthenticated, "totp_required", "Enter the code from your authenticator app (or a recovery code)."))
		}
		err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
			lu, err := s.Users.UserByID(ctx, tx, u.ID, true)
			if err != nil {
				return err
			}
			factor, err = s.checkSecondFactor(ctx, tx, lu, in.TOTPCode)
			return err
		})
		if err != nil {
			return nil, cancelAttempt(ctx, att, err)
		}
		if factor == "" {
			s.Metrics.LoginFailed(LoginBadTOTP)
			return nil, s.failAttempt(ctx, att, u, meta, apperr.New(apperr.Unauthenticated, "invalid_totp_code", "The authentication code is wrong or already used."))
		}
	}
	if err := att.Succeeded(ctx); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("reset login throttle")
	}
	orgID, role, err := s.defaultOrg(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	var sess *Session
	err = postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
		var err error
		if sess, err = s.openSession(ctx, tx, u.ID, orgID, role, uuid.Nil, factor); err != nil {
			return err
		}
		if err := s.Users.TouchLogin(ctx, tx, u.ID); err != nil {
			return err
		}
		if orgID == uuid.Nil {
			return nil
		}
		return audit.Record(ctx, tx, audit.Entry{OrgID: orgID, ActorUserID: &u.ID, Action: "user.login",
			TargetType: "user", TargetID: u.ID.String(), IP: meta.IP, UserAgent: meta.UserAgent})
	})
	return sess, err
}

// defaultOrg picks the organization a login starts in: the oldest
// membership whose organization is not suspended, else the oldest.
func (s *Service) defaultOrg(ctx context.Context, userID uuid.UUID) (uuid.UUID, string, error) {
	ms, err := s.Orgs.Memberships(ctx, s.DB, userID)
	if err != nil || len(ms) == 0 {
		return uuid.Nil, "", err
	}
	for _, m := range ms {
		if !m.Suspended {
			return m.OrgID, m.Role, nil
		}
	}
	return ms[0].OrgID, ms[0].Role, nil
}

// failAttempt leaves a wrong attempt counted and, when it locked the
// account, records the lockout in each of the user's organizations.
func (s *Service) failAttempt(ctx context.Context, att *Attempt, u *User, meta audit.Meta, cause error) error {
	if att.Failed() && u != nil {
		err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
			return s.auditAllOrgs(ctx, tx, u.ID, "user.login_locked", meta)
		})
		if err != nil {
			return err
		}
	}
	return cause
}

// cancelAttempt takes back an attempt that did not end in a wrong
// password, and returns cause.
func cancelAttempt(ctx context.Context, att *Attempt, cause error) error {
	if err := att.Cancel(ctx); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("take back password attempt")
	}
	return cause
}

// throttleDown answers logins while Redis is unreachable: without the
// throttle, guessing would be unlimited, so logins wait rather than run
// unthrottled (fail closed); sessions already open are unaffected.
func throttleDown(err error) error {
	return &apperr.Error{Kind: apperr.Unavailable, Code: "login_unavailable", RetryAfter: 5, Err: err,
		Message: "Logging in is briefly unavailable; try again in a few seconds."}
}

func tooMany(wait int) error {
	return &apperr.Error{Kind: apperr.TooManyRequests, Code: "too_many_attempts", RetryAfter: wait,
		Message: fmt.Sprintf("Too many wrong passwords; try again in %d seconds.", wait)}
}

var errAccountDisabled = apperr.New(apperr.Forbidden, "account_disabled", "This account is disabled; contact support.")

// checkSecondFactor accepts a TOTP code for a step after the last one used
// (so a code works once), or an unused recovery code, and says which it
// was (SecondFactorTOTP, SecondFactorRecovery; "" for neither). u must be
// locked in tx.
func (s *Service) checkSecondFactor(ctx context.Context, tx *sqlx.Tx, u *User, code string) (string, error) {
	if u.TOTPSecret == nil {
		return "", nil
	}
	secret, err := s.Box.Open(u.TOTPSecret, u.ID[:])
	if err != nil {
		return "", fmt.Errorf("open totp secret: %w", err)
	}
	if step := MatchTOTP(string(secret), code, s.now()); step > 0 {
		if step <= u.TOTPLastStep {
			return "", nil
		}
		u.TOTPLastStep = step
		return SecondFactorTOTP, s.Users.UpdateUser(ctx, tx, u)
	}
	if len(strings.TrimSpace(code)) > 6 {
		ok, err := s.Users.UseRecoveryCode(ctx, tx, u.ID, HashRecoveryCode(code))
		if ok {
			return SecondFactorRecovery, err
		}
		return "", err
	}
	return "", nil
}

// openSession issues an access token and a refresh token; family is the
// login's family, or uuid.Nil to start one, and factor the second factor
// the login was opened with.
func (s *Service) openSession(ctx context.Context, tx *sqlx.Tx, userID, orgID uuid.UUID, role string, family uuid.UUID, factor string) (*Session, error) {
	if family == uuid.Nil {
		family = postgres.NewID()
	}
	refresh, hash := NewOpaqueToken()
	rt := &RefreshToken{ID: postgres.NewID(), FamilyID: family, UserID: userID, ActiveOrgID: orgID, TokenHash: hash,
		ExpiresAt: s.now().Add(RefreshTokenTTL), SecondFactor: factor}
	if err := s.Users.CreateRefreshToken(ctx, tx, rt); err != nil {
		return nil, err
	}
	access, err := s.Tokens.IssueToken(Token{User: userID, Org: orgID, Role: role, Session: family, SecondFactor: factor})
	if err != nil {
		return nil, err
	}
	return &Session{AccessToken: access, RefreshToken: refresh, ExpiresIn: int(s.Tokens.TTL.Seconds()), OrgID: orgID, Role: role, UserID: userID}, nil
}

// Refresh rotates a refresh token. A token that was already rotated is a
// sign it was stolen (the thief or the owner used it first): the whole
// family is revoked and both parties must log in again.
func (s *Service) Refresh(ctx context.Context, token string) (*Session, error) {
	if token == "" {
		return nil, errInvalidRefresh
	}
	var sess *Session
	reused := false
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		rt, err := s.Users.RefreshTokenByHash(ctx, tx, HashToken(token))
		if errors.Is(err, ErrNotFound) {
			return errInvalidRefresh
		}
		if err != nil {
			return err
		}
		if rt.RevokedAt != nil || !rt.ExpiresAt.After(s.now()) {
			return errInvalidRefresh
		}
		if rt.RotatedAt != nil {
			reused = true
			return s.Users.RevokeFamily(ctx, tx, rt.UserID, rt.FamilyID)
		}
		// Disabling revokes every family; this catches a rotation that
		// raced the disabling.
		if u, err := s.Users.UserByID(ctx, tx, rt.UserID, false); err != nil {
			return err
		} else if u.DisabledAt != nil {
			return tenant.ErrUserDisabled
		}
		if err := s.Users.MarkRotated(ctx, tx, rt.ID); err != nil {
			return err
		}
		orgID, role, err := s.activeRole(ctx, tx, rt.UserID, rt.ActiveOrgID)
		if err != nil {
			return err
		}
		sess, err = s.openSession(ctx, tx, rt.UserID, orgID, role, rt.FamilyID, rt.SecondFactor)
		return err
	})
	if err != nil {
		return nil, err
	}
	if reused {
		zerolog.Ctx(ctx).Warn().Msg("refresh token reused; family revoked")
		return nil, apperr.New(apperr.Unauthenticated, "refresh_token_reused", "This refresh token was already used; every session of this login was signed out. Log in again.")
	}
	return sess, nil
}

// activeRole returns the user's current role in orgID, falling back to their
// first organization when they have left it (or to none). It reads the
// memberships list, which needs no tenant.
func (s *Service) activeRole(ctx context.Context, tx *sqlx.Tx, userID, orgID uuid.UUID) (uuid.UUID, string, error) {
	ms, err := s.Orgs.Memberships(ctx, tx, userID)
	if err != nil || len(ms) == 0 {
		return uuid.Nil, "", err
	}
	for _, m := range ms {
		if m.OrgID == orgID {
			return m.OrgID, m.Role, nil
		}
	}
	return ms[0].OrgID, ms[0].Role, nil
}

// Logout revokes the family of a refresh token. Unknown tokens are ignored:
// the outcome the caller wants (that token no longer works) holds.
func (s *Service) Logout(ctx context.Context, token string) error {
	return postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		rt, err := s.Users.RefreshTokenByHash(ctx, tx, HashToken(token))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return s.Users.RevokeFamily(ctx, tx, rt.UserID, rt.FamilyID)
	})
}

// LogoutEverywhere revokes every login of the user whose refresh token
// this is, on every device (what a user does after losing one), and
// records user.sessions_revoked in each of their organizations. Unlike
// Logout it takes a live token only: an unknown, revoked, rotated or
// expired one answers 401 invalid_refresh_token and changes nothing, so an
// old leaked token cannot sign a user out everywhere. Access tokens
// already issued live on until they expire (15 minutes); they cannot
// refresh, and an access token of a revoked login gets 401 session_ended.
func (s *Service) LogoutEverywhere(ctx context.Context, token string, meta audit.Meta) error {
	return postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		rt, err := s.Users.RefreshTokenByHash(ctx, tx, HashToken(token))
		if errors.Is(err, ErrNotFound) {
			return errInvalidRefresh
		}
		if err != nil {
			return err
		}
		if rt.RevokedAt != nil || rt.RotatedAt != nil || !rt.ExpiresAt.After(s.now()) {
			return errInvalidRefresh
		}
		if err := s.Users.RevokeUserSessions(ctx, tx, rt.UserID, uuid.Nil); err != nil {
			return err
		}
		return s.auditAllOrgs(ctx, tx, rt.UserID, "user.sessions_revoked", meta)
	})
}

// SwitchOrg moves the caller's login to another organization the user
// belongs to. It stays one login (one refresh-token family), so logout
// still ends all of it: the family's current refresh token is rotated, and
// the new pair replaces the one the client held. Presenting the replaced
// refresh token afterwards is reuse and revokes the family, as after a
// refresh. An access token of a login that was signed out or revoked (401
// session_ended) cannot switch, so it cannot become a new session.
func (s *Service) SwitchOrg(ctx context.Context, p *tenant.Principal, orgID uuid.UUID) (*Session, error) {
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	if p.SessionID == uuid.Nil {
		return nil, apperr.New(apperr.Unauthenticated, "invalid_token", "This access token names no session; refresh it or log in again.")
	}
	var sess *Session
	err := postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
		ms, err := s.Orgs.Memberships(ctx, tx, p.UserID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(ms, func(m Membership) bool { return m.OrgID == orgID })
		if i < 0 {
			return apperr.New(apperr.Forbidden, "not_a_member", "You are not a member of that organization.")
		}
		if ms[i].Suspended {
			return tenant.ErrSuspended
		}
		rt, err := s.Users.CurrentRefreshToken(ctx, tx, p.UserID, p.SessionID)
		if errors.Is(err, ErrNotFound) || err == nil && !rt.ExpiresAt.After(s.now()) {
			return errSessionEnded
		}
		if err != nil {
			return err
		}
		if err := s.Users.MarkRotated(ctx, tx, rt.ID); err != nil {
			return err
		}
		sess, err = s.openSession(ctx, tx, p.UserID, orgID, ms[i].Role, rt.FamilyID, rt.SecondFactor)
		return err
	})
	return sess, err
}

var errSessionEnded = apperr.New(apperr.Unauthenticated, "session_ended", "This login was signed out; log in again.")
