package auth

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/jobs/task"
)

// Lifetimes of the tokens the service hands out.
const (
	RefreshTokenTTL   = 30 * 24 * time.Hour
	VerifyTokenTTL    = 24 * time.Hour
	ResetTokenTTL     = time.Hour
	InvitationTTL     = 7 * 24 * time.Hour
	RecoveryCodeCount = 10
)

// Service runs accounts and sessions: registration, verification, login,
// refresh-token rotation, password reset, 2FA, the caller's profile and
// invitation acceptance (which may create an account).
type Service struct {
	DB       *sqlx.DB
	Users    UserStore
	Orgs     OrgStore
	Tokens   *Issuer
	Box      *SecretBox
	Throttle *Throttle
	Params   PasswordParams
	// BaseURL is APP_BASE_URL; links in emails start with it.
	BaseURL string
	// Product names the TOTP issuer shown in authenticator apps.
	Product string
	Now     func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Session is a token pair.
type Session struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int
	OrgID        uuid.UUID
	Role         string
	UserID       uuid.UUID
}

var (
	errInvalidCredentials = apperr.New(apperr.Unauthenticated, "invalid_credentials", "The email or password is wrong.")
	errInvalidRefresh     = apperr.New(apperr.Unauthenticated, "invalid_refresh_token", "The refresh token is invalid or expired; log in again.")
	errBadToken           = apperr.New(apperr.Invalid, "invalid_token", "The link is invalid, expired or already used.")
)

// NormalizeEmail trims and lower-cases an address and checks its form.
func NormalizeEmail(field, email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > 254 || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") {
		return "", apperr.Validation(apperr.FieldError{Field: field, Message: "must be an email address"})
	}
	return e, nil
}

// RegisterInput is a new account.
type RegisterInput struct {
	Email, Password, Name, OrganizationName string
}

// Registered is what Register created.
type Registered struct {
	User  *authdb.User
	OrgID uuid.UUID
}

// Register creates a user, their first organization (as owner) and queues
// the verification email, all in one transaction.
func (s *Service) Register(ctx context.Context, in RegisterInput, meta Meta) (*Registered, error) {
	email, err := NormalizeEmail("email", in.Email)
	if err != nil {
		return nil, err
	}
	if err := CheckPassword("password", in.Password); err != nil {
		return nil, err
	}
	hash, err := HashPassword(in.Password, s.Params)
	if err != nil {
		return nil, err
	}
	orgName := strings.TrimSpace(in.OrganizationName)
	if orgName == "" {
		orgName = strings.TrimSpace(in.Name) + "'s organization"
	}
	u := &authdb.User{ID: newID(), Email: email, Name: strings.TrimSpace(in.Name), PasswordHash: hash}
	o := &orgdb.Organization{ID: newID(), Name: orgName}
	err = postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		if err := s.Users.CreateUser(ctx, tx, u); err != nil {
			return err
		}
		if err := CreateOrgWithOwner(ctx, tx, s.Orgs, o, u.ID, meta); err != nil {
			return err
		}
		return s.sendVerification(ctx, tx, u, email)
	})
	if errors.Is(err, authdb.ErrEmailTaken) {
		return nil, apperr.New(apperr.Conflict, "email_taken", "An account with this email already exists.")
	}
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	return &Registered{User: u, OrgID: o.ID}, nil
}

// CreateOrgWithOwner inserts o with ownerID as its owner and records it in
// the new organization's audit log, inside tx, leaving tx's tenant set to o.
func CreateOrgWithOwner(ctx context.Context, tx *sqlx.Tx, st OrgStore, o *orgdb.Organization, ownerID uuid.UUID, meta Meta) error {
	if err := st.CreateOrg(ctx, tx, o); err != nil {
		return err
	}
	if err := orgdb.SetTenant(ctx, tx, o.ID); err != nil {
		return err
	}
	if err := st.AddMember(ctx, tx, &orgdb.Membership{OrgID: o.ID, UserID: ownerID, Role: RoleOwner}); err != nil {
		return err
	}
	return st.AddAudit(ctx, tx, &orgdb.AuditEntry{OrgID: o.ID, ActorUserID: &ownerID, Action: "organization.created",
		TargetType: "organization", TargetID: o.ID.String(), IP: meta.IP, UserAgent: meta.UserAgent})
}

func (s *Service) sendVerification(ctx context.Context, tx *sqlx.Tx, u *authdb.User, email string) error {
	token, hash := NewOpaqueToken()
	t := &authdb.EmailToken{ID: newID(), UserID: u.ID, Purpose: authdb.PurposeVerifyEmail, Email: email, TokenHash: hash,
		ExpiresAt: s.now().Add(VerifyTokenTTL)}
	if err := s.Users.CreateEmailToken(ctx, tx, t); err != nil {
		return err
	}
	return QueueEmail(ctx, tx, email, "verify_email", map[string]string{
		"name": u.Name, "link": Link(s.BaseURL, "/verify-email", token), "hours": "24"})
}

// QueueEmail adds an account email (email:account: verification, reset) to
// the outbox inside tx; it is sent only if tx commits. Account mail belongs
// to no organization, even at registration; an organization's mail is
// email:send (see task.NewEmailSendTask).
func QueueEmail(ctx context.Context, tx sqlx.ExtContext, to, template string, data map[string]string) error {
	t, err := task.NewAccountEmailTask(task.EmailPayload{To: to, Template: template, Data: data})
	if err != nil {
		return err
	}
	_, err = outbox.Add(ctx, tx, t)
	return err
}

// Link builds an absolute link to the app with a token query parameter.
func Link(base, path, token string) string {
	return strings.TrimRight(base, "/") + path + "?token=" + url.QueryEscape(token)
}

// VerifyEmail consumes a verification token and marks its address verified;
// for an email change it also makes the new address the account's.
func (s *Service) VerifyEmail(ctx context.Context, token string) error {
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		t, err := s.Users.UseEmailToken(ctx, tx, authdb.PurposeVerifyEmail, HashToken(token))
		if err != nil {
			return err
		}
		u, err := s.Users.UserByID(ctx, tx, t.UserID, true)
		if err != nil {
			return err
		}
		now := s.now()
		u.Email = t.Email
		u.EmailVerifiedAt = &now
		return s.Users.UpdateUser(ctx, tx, u)
	})
	switch {
	case errors.Is(err, authdb.ErrNotFound):
		return errBadToken
	case errors.Is(err, authdb.ErrEmailTaken):
		return apperr.New(apperr.Conflict, "email_taken", "Another account uses this email now.")
	}
	return err
}

// ResendVerification mails a new verification link when email names an
// unverified account. It says nothing about whether it did.
func (s *Service) ResendVerification(ctx context.Context, email string) error {
	return s.ifAccount(ctx, email, func(tx *sqlx.Tx, u *authdb.User) error {
		if u.EmailVerifiedAt != nil || !s.allowMail(ctx, "verify", u.Email) {
			return nil
		}
		return s.sendVerification(ctx, tx, u, u.Email)
	})
}

// allowMail applies the per-address mail limit; when Redis is unreachable
// it lets the email go (a lost limit for a while beats a lost reset link).
func (s *Service) allowMail(ctx context.Context, kind, address string) bool {
	ok, err := s.Throttle.AllowMail(ctx, kind, address)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("mail throttle")
		return true
	}
	if !ok {
		zerolog.Ctx(ctx).Info().Str("kind", kind).Msg("mail limit reached; not sending")
	}
	return ok
}

// ifAccount runs fn in a transaction when email names an account, and does
// nothing otherwise: endpoints that must not reveal which addresses have
// accounts answer the same either way.
func (s *Service) ifAccount(ctx context.Context, email string, fn func(tx *sqlx.Tx, u *authdb.User) error) error {
	email, err := NormalizeEmail("email", email)
	if err != nil {
		return err
	}
	return postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		u, err := s.Users.UserByEmail(ctx, tx, email)
		if errors.Is(err, authdb.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(tx, u)
	})
}

// LoginInput is a login attempt.
type LoginInput struct {
	Email, Password, TOTPCode string
}

// Login checks credentials (and the second factor when 2FA is on) under the
// throttle and opens a session in the user's first organization.
func (s *Service) Login(ctx context.Context, in LoginInput, meta Meta) (*Session, error) {
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if wait, err := s.Throttle.Locked(ctx, email, meta.IP); err != nil {
		return nil, throttleDown(err)
	} else if wait > 0 {
		return nil, tooMany(wait)
	}
	u, err := s.Users.UserByEmail(ctx, s.DB, email)
	if err != nil && !errors.Is(err, authdb.ErrNotFound) {
		return nil, err
	}
	ok := false
	if u != nil && err == nil {
		ok, err = VerifyPassword(in.Password, u.PasswordHash)
		if err != nil {
			return nil, err
		}
	} else {
		_, _ = VerifyPassword(in.Password, dummyHash())
		u = nil
	}
	if !ok {
		return nil, s.failLogin(ctx, email, u, meta, errInvalidCredentials)
	}
	if u.EmailVerifiedAt == nil {
		return nil, apperr.New(apperr.Forbidden, "email_not_verified", "Verify your email address first; we can send the link again.")
	}
	if u.TOTPEnabledAt != nil {
		if strings.TrimSpace(in.TOTPCode) == "" {
			return nil, apperr.New(apperr.Unauthenticated, "totp_required", "Enter the code from your authenticator app (or a recovery code).")
		}
		var accepted bool
		err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
			lu, err := s.Users.UserByID(ctx, tx, u.ID, true)
			if err != nil {
				return err
			}
			accepted, err = s.checkSecondFactor(ctx, tx, lu, in.TOTPCode)
			return err
		})
		if err != nil {
			return nil, err
		}
		if !accepted {
			return nil, s.failLogin(ctx, email, u, meta, apperr.New(apperr.Unauthenticated, "invalid_totp_code", "The authentication code is wrong or already used."))
		}
	}
	if err := s.Throttle.Reset(ctx, email); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("reset login throttle")
	}
	orgID, role, err := s.defaultOrg(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	var sess *Session
	err = postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
		var err error
		if sess, err = s.openSession(ctx, tx, u.ID, orgID, role, uuid.Nil); err != nil {
			return err
		}
		if orgID == uuid.Nil {
			return nil
		}
		return s.Orgs.AddAudit(ctx, tx, &orgdb.AuditEntry{OrgID: orgID, ActorUserID: &u.ID, Action: "user.login",
			TargetType: "user", TargetID: u.ID.String(), IP: meta.IP, UserAgent: meta.UserAgent})
	})
	return sess, err
}

// defaultOrg picks the organization a login starts in: the oldest
// membership whose organization is not suspended, else the oldest.
func (s *Service) defaultOrg(ctx context.Context, userID uuid.UUID) (uuid.UUID, string, error) {
	ms, err := s.Orgs.UserMemberships(ctx, s.DB, userID)
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

// failLogin counts a failure and, when it locks the account, records the
// lockout in each of the user's organizations.
func (s *Service) failLogin(ctx context.Context, email string, u *authdb.User, meta Meta, cause error) error {
	lockedNow, err := s.Throttle.Fail(ctx, email, meta.IP)
	if err != nil {
		return throttleDown(err)
	}
	if lockedNow && u != nil {
		err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
			return s.auditAllOrgs(ctx, tx, u.ID, "user.login_locked", meta)
		})
		if err != nil {
			return err
		}
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
		Message: fmt.Sprintf("Too many failed logins; try again in %d seconds.", wait)}
}

// auditAllOrgs writes action about the user into each organization they
// belong to; account-wide events concern every one of them.
func (s *Service) auditAllOrgs(ctx context.Context, tx *sqlx.Tx, userID uuid.UUID, action string, meta Meta) error {
	ms, err := s.Orgs.UserMemberships(ctx, tx, userID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := orgdb.SetTenant(ctx, tx, m.OrgID); err != nil {
			return err
		}
		if err := s.Orgs.AddAudit(ctx, tx, &orgdb.AuditEntry{OrgID: m.OrgID, ActorUserID: &userID, Action: action,
			TargetType: "user", TargetID: userID.String(), IP: meta.IP, UserAgent: meta.UserAgent}); err != nil {
			return err
		}
	}
	return nil
}

// checkSecondFactor accepts a TOTP code for a step after the last one used
// (so a code works once), or an unused recovery code. u must be locked in tx.
func (s *Service) checkSecondFactor(ctx context.Context, tx *sqlx.Tx, u *authdb.User, code string) (bool, error) {
	if u.TOTPSecret == nil {
		return false, nil
	}
	secret, err := s.Box.Open(u.TOTPSecret, u.ID[:])
	if err != nil {
		return false, fmt.Errorf("open totp secret: %w", err)
	}
	if step := MatchTOTP(string(secret), code, s.now()); step > 0 {
		if step <= u.TOTPLastStep {
			return false, nil
		}
		u.TOTPLastStep = step
		return true, s.Users.UpdateUser(ctx, tx, u)
	}
	if len(strings.TrimSpace(code)) > 6 {
		return s.Users.UseRecoveryCode(ctx, tx, u.ID, HashRecoveryCode(code))
	}
	return false, nil
}

// openSession issues an access token and a refresh token; family is the
// login's family, or uuid.Nil to start one.
func (s *Service) openSession(ctx context.Context, tx *sqlx.Tx, userID, orgID uuid.UUID, role string, family uuid.UUID) (*Session, error) {
	if family == uuid.Nil {
		family = newID()
	}
	refresh, hash := NewOpaqueToken()
	rt := &authdb.RefreshToken{ID: newID(), FamilyID: family, UserID: userID, ActiveOrgID: orgID, TokenHash: hash,
		ExpiresAt: s.now().Add(RefreshTokenTTL)}
	if err := s.Users.CreateRefreshToken(ctx, tx, rt); err != nil {
		return nil, err
	}
	access, err := s.Tokens.Issue(userID, orgID, role)
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
		if errors.Is(err, authdb.ErrNotFound) {
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
		if err := s.Users.MarkRotated(ctx, tx, rt.ID); err != nil {
			return err
		}
		orgID, role, err := s.activeRole(ctx, tx, rt.UserID, rt.ActiveOrgID)
		if err != nil {
			return err
		}
		sess, err = s.openSession(ctx, tx, rt.UserID, orgID, role, rt.FamilyID)
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
// first organization when they have left it (or to none).
func (s *Service) activeRole(ctx context.Context, tx *sqlx.Tx, userID, orgID uuid.UUID) (uuid.UUID, string, error) {
	if orgID != uuid.Nil {
		if err := orgdb.SetTenant(ctx, tx, orgID); err != nil {
			return uuid.Nil, "", err
		}
		m, err := s.Orgs.Member(ctx, tx, orgID, userID, false)
		if err == nil {
			return orgID, m.Role, nil
		}
		if !errors.Is(err, orgdb.ErrNotFound) {
			return uuid.Nil, "", err
		}
	}
	ms, err := s.Orgs.UserMemberships(ctx, tx, userID)
	if err != nil || len(ms) == 0 {
		return uuid.Nil, "", err
	}
	return ms[0].OrgID, ms[0].Role, nil
}

// Logout revokes the family of a refresh token. Unknown tokens are ignored:
// the outcome the caller wants (that token no longer works) holds.
func (s *Service) Logout(ctx context.Context, token string) error {
	return postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		rt, err := s.Users.RefreshTokenByHash(ctx, tx, HashToken(token))
		if errors.Is(err, authdb.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return s.Users.RevokeFamily(ctx, tx, rt.UserID, rt.FamilyID)
	})
}

// ForgotPassword mails a one-hour reset link when email names an account.
// It says nothing about whether it did.
func (s *Service) ForgotPassword(ctx context.Context, email string) error {
	return s.ifAccount(ctx, email, func(tx *sqlx.Tx, u *authdb.User) error {
		if !s.allowMail(ctx, "reset", u.Email) {
			return nil
		}
		token, hash := NewOpaqueToken()
		if err := s.Users.CreateEmailToken(ctx, tx, &authdb.EmailToken{ID: newID(), UserID: u.ID, Purpose: authdb.PurposeResetPassword,
			Email: u.Email, TokenHash: hash, ExpiresAt: s.now().Add(ResetTokenTTL)}); err != nil {
			return err
		}
		return QueueEmail(ctx, tx, u.Email, "reset_password", map[string]string{
			"name": u.Name, "link": Link(s.BaseURL, "/reset-password", token), "minutes": "60"})
	})
}

// ResetPassword consumes a reset token, sets the password and signs the
// user out everywhere.
func (s *Service) ResetPassword(ctx context.Context, token, password string, meta Meta) error {
	if err := CheckPassword("password", password); err != nil {
		return err
	}
	hash, err := HashPassword(password, s.Params)
	if err != nil {
		return err
	}
	var email string
	err = postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		t, err := s.Users.UseEmailToken(ctx, tx, authdb.PurposeResetPassword, HashToken(token))
		if err != nil {
			return err
		}
		u, err := s.Users.UserByID(ctx, tx, t.UserID, true)
		if err != nil {
			return err
		}
		u.PasswordHash = hash
		// Following the link proved the mailbox is theirs.
		if u.EmailVerifiedAt == nil && t.Email == u.Email {
			now := s.now()
			u.EmailVerifiedAt = &now
		}
		email = u.Email
		if err := s.Users.UpdateUser(ctx, tx, u); err != nil {
			return err
		}
		if err := s.Users.RevokeUserSessions(ctx, tx, u.ID); err != nil {
			return err
		}
		return s.auditAllOrgs(ctx, tx, u.ID, "user.password_reset", meta)
	})
	if errors.Is(err, authdb.ErrNotFound) {
		return errBadToken
	}
	if err == nil {
		if rerr := s.Throttle.Reset(ctx, email); rerr != nil {
			zerolog.Ctx(ctx).Warn().Err(rerr).Msg("reset login throttle")
		}
	}
	return err
}

// SwitchOrg opens a session in another organization the user belongs to.
func (s *Service) SwitchOrg(ctx context.Context, p *Principal, orgID uuid.UUID) (*Session, error) {
	if !p.IsUser() {
		return nil, errUserOnly
	}
	var sess *Session
	err := postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
		m, err := s.Orgs.Member(ctx, tx, orgID, p.UserID, false)
		if errors.Is(err, orgdb.ErrNotFound) {
			return apperr.New(apperr.Forbidden, "not_a_member", "You are not a member of that organization.")
		}
		if err != nil {
			return err
		}
		at, err := s.Orgs.SuspendedAt(ctx, tx, orgID)
		if err != nil {
			return err
		}
		if at != nil {
			return ErrSuspended
		}
		sess, err = s.openSession(ctx, tx, p.UserID, orgID, m.Role, uuid.Nil)
		return err
	})
	return sess, err
}

// ErrSuspended answers every call in a suspended organization.
var ErrSuspended = apperr.New(apperr.Forbidden, "organization_suspended", "This organization is suspended; contact support.")

var errUserOnly = apperr.New(apperr.Forbidden, "user_required", "This endpoint needs a user's access token, not an API key.")

// TOTPSetup generates a pending TOTP secret for the user.
func (s *Service) TOTPSetup(ctx context.Context, p *Principal) (secret, otpauthURL string, err error) {
	if !p.IsUser() {
		return "", "", errUserOnly
	}
	err = postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		u, err := s.Users.UserByID(ctx, tx, p.UserID, true)
		if err != nil {
			return err
		}
		if u.TOTPEnabledAt != nil {
			return apperr.New(apperr.Conflict, "totp_already_enabled", "Two-factor authentication is already on; disable it first.")
		}
		secret, otpauthURL, err = NewTOTPKey(s.Product, u.Email)
		if err != nil {
			return err
		}
		u.TOTPSecret = s.Box.Seal([]byte(secret), u.ID[:])
		return s.Users.UpdateUser(ctx, tx, u)
	})
	return secret, otpauthURL, err
}

// TOTPEnable turns 2FA on once the user proves the app has the secret, and
// returns fresh recovery codes (shown once, stored hashed).
func (s *Service) TOTPEnable(ctx context.Context, p *Principal, code string, meta Meta) ([]string, error) {
	if !p.IsUser() {
		return nil, errUserOnly
	}
	var codes []string
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		u, err := s.Users.UserByID(ctx, tx, p.UserID, true)
		if err != nil {
			return err
		}
		if u.TOTPEnabledAt != nil {
			return apperr.New(apperr.Conflict, "totp_already_enabled", "Two-factor authentication is already on.")
		}
		if u.TOTPSecret == nil {
			return apperr.New(apperr.Conflict, "totp_not_set_up", "Call 2fa/setup first.")
		}
		secret, err := s.Box.Open(u.TOTPSecret, u.ID[:])
		if err != nil {
			return fmt.Errorf("open totp secret: %w", err)
		}
		step := MatchTOTP(string(secret), code, s.now())
		if step == 0 || step <= u.TOTPLastStep {
			return apperr.New(apperr.Invalid, "invalid_totp_code", "The authentication code is wrong or already used.")
		}
		now := s.now()
		u.TOTPEnabledAt, u.TOTPLastStep = &now, step
		if err := s.Users.UpdateUser(ctx, tx, u); err != nil {
			return err
		}
		var hashes [][]byte
		codes, hashes = NewRecoveryCodes(RecoveryCodeCount)
		if err := s.Users.ReplaceRecoveryCodes(ctx, tx, u.ID, hashes); err != nil {
			return err
		}
		return s.auditAllOrgs(ctx, tx, u.ID, "user.2fa_enabled", meta)
	})
	return codes, err
}

// TOTPDisable turns 2FA off; it needs the password and a current code (or a
// recovery code), so a stolen access token alone cannot remove the factor.
func (s *Service) TOTPDisable(ctx context.Context, p *Principal, password, code string, meta Meta) error {
	if !p.IsUser() {
		return errUserOnly
	}
	return postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		u, err := s.Users.UserByID(ctx, tx, p.UserID, true)
		if err != nil {
			return err
		}
		if u.TOTPEnabledAt == nil {
			return apperr.New(apperr.Conflict, "totp_not_enabled", "Two-factor authentication is not on.")
		}
		if ok, err := VerifyPassword(password, u.PasswordHash); err != nil {
			return err
		} else if !ok {
			return apperr.New(apperr.Forbidden, "invalid_password", "The password is wrong.")
		}
		ok, err := s.checkSecondFactor(ctx, tx, u, code)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.New(apperr.Forbidden, "invalid_totp_code", "The authentication code is wrong or already used.")
		}
		u.TOTPSecret, u.TOTPEnabledAt = nil, nil
		if err := s.Users.UpdateUser(ctx, tx, u); err != nil {
			return err
		}
		if err := s.Users.DeleteRecoveryCodes(ctx, tx, u.ID); err != nil {
			return err
		}
		return s.auditAllOrgs(ctx, tx, u.ID, "user.2fa_disabled", meta)
	})
}

func newID() uuid.UUID { return NewID() }

// NewID returns a time-ordered (v7) UUID for a new row, so inserts append
// to indexes instead of scattering.
func NewID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.New()
	}
	return id
}
