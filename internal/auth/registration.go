package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/rs/zerolog"
)

// RegisterInput is a new account.
type RegisterInput struct {
	Email, Password, Name, OrganizationName string
}

// Register creates a user, their first organization (as owner) and queues
// the verification email, all in one transaction. When the address already
// has an account, it changes nothing and mails that address a notice
// instead; the caller cannot tell the two apart: the same nil error after
// the same argon2id work (the password is hashed either way), and the
// shorter transaction of the existing-address case is padded to the median
// of recent new registrations' (see costMedian).
func (s *Service) Register(ctx context.Context, in RegisterInput, meta audit.Meta) error {
	email, err := NormalizeEmail("email", in.Email)
	if err != nil {
		return err
	}
	if err := CheckPassword("password", in.Password); err != nil {
		return err
	}
	hash, err := s.Hasher.Hash(ctx, in.Password)
	if err != nil {
		return err
	}
	orgName := strings.TrimSpace(in.OrganizationName)
	if orgName == "" {
		orgName = strings.TrimSpace(in.Name) + "'s organization"
	}
	u := &User{ID: postgres.NewID(), Email: email, Name: strings.TrimSpace(in.Name), PasswordHash: hash}
	created, start := false, time.Now()
	err = postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		existing, err := s.Users.UserByEmail(ctx, tx, email)
		switch {
		case err == nil:
			return s.notifyAddressInUse(ctx, tx, existing, meta)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if err := s.Users.CreateUser(ctx, tx, u); err != nil {
			return err
		}
		if _, err = s.Orgs.CreateWithOwner(ctx, tx, orgName, u.ID, meta); err != nil {
			return err
		}
		created = true
		return s.sendVerification(ctx, tx, u, email)
	})
	if errors.Is(err, ErrEmailTaken) {
		// A concurrent registration of the address won the race.
		created = false
		err = s.ifAccount(ctx, email, func(tx *sqlx.Tx, existing *User) error {
			return s.notifyAddressInUse(ctx, tx, existing, meta)
		})
	}
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if took := time.Since(start); created {
		s.registerCost.observe(took)
	} else {
		s.registerCost.pad(ctx, took)
	}
	return nil
}

// costMedian keeps the last 32 durations of a new registration's
// transaction (user, organization, membership, audit entry, token and
// email). Registering a taken address does less work; it waits until it has
// taken their median, so the answer's timing does not tell the cases
// apart. A median follows the typical cost without being dragged up by a
// slow outlier under load. It measures wall time on purpose: what matters
// is what a caller can see.
type costMedian struct {
	mu      sync.Mutex
	samples [32]time.Duration
	n       int // samples recorded so far; the ring's next slot is n % len
}

func (c *costMedian) observe(d time.Duration) {
	c.mu.Lock()
	c.samples[c.n%len(c.samples)] = d
	c.n++
	c.mu.Unlock()
}

func (c *costMedian) median() time.Duration {
	c.mu.Lock()
	s := slices.Clone(c.samples[:min(c.n, len(c.samples))])
	c.mu.Unlock()
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return s[len(s)/2]
}

func (c *costMedian) pad(ctx context.Context, took time.Duration) {
	wait := c.median() - took
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// notifyAddressInUse tells the owner of an account that someone tried to
// use its address for another account (registering, or as the new address
// of an email change), within the per-address mail limit.
func (s *Service) notifyAddressInUse(ctx context.Context, tx *sqlx.Tx, owner *User, meta audit.Meta) error {
	if !s.allowMail(ctx, "in-use", owner.Email) {
		return nil
	}
	return s.notify(ctx, tx, owner.Email, NoticeAddressInUse, owner, meta)
}

// sendVerification queues a 24-hour verification link for email, the
// account's address or the one it is changing to; the worker mints it.
func (s *Service) sendVerification(ctx context.Context, tx *sqlx.Tx, u *User, email string) error {
	return s.queueLink(ctx, tx, &EmailToken{ID: postgres.NewID(), UserID: u.ID, Purpose: PurposeVerifyEmail, Email: email,
		ExpiresAt: s.now().Add(VerifyTokenTTL)}, map[string]string{"name": u.Name, "hours": "24"})
}

// VerifyEmail consumes a verification token and marks its address verified;
// for an email change (asked for with PATCH /me) it also makes the new
// address the account's, audited as user.email_changed, with meta, in each
// of the user's organizations.
func (s *Service) VerifyEmail(ctx context.Context, token string, meta audit.Meta) error {
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		t, err := s.Users.UseEmailToken(ctx, tx, PurposeVerifyEmail, HashToken(token))
		if err != nil {
			return err
		}
		u, err := s.Users.UserByID(ctx, tx, t.UserID, true)
		if err != nil {
			return err
		}
		now := s.now()
		changed := u.Email != t.Email
		u.Email = t.Email
		u.EmailVerifiedAt = &now
		if err := s.Users.UpdateUser(ctx, tx, u); err != nil {
			return err
		}
		if changed {
			return s.auditAllOrgs(ctx, tx, u.ID, "user.email_changed", meta)
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return errBadToken
	case errors.Is(err, ErrEmailTaken):
		return apperr.New(apperr.Conflict, "email_taken", "Another account uses this email now.")
	}
	return err
}

// ResendVerification mails a new verification link when email names an
// unverified account. It says nothing about whether it did.
func (s *Service) ResendVerification(ctx context.Context, email string) error {
	return s.ifAccount(ctx, email, func(tx *sqlx.Tx, u *User) error {
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

// allowVerificationMail applies resend-verification's per-address limit
// to a verification link the caller asked for (an email change), where a
// refusal can be said: 429 too_many_emails with Retry-After. Like
// allowMail it lets the email go when Redis is unreachable.
func (s *Service) allowVerificationMail(ctx context.Context, address string) error {
	wait, err := s.Throttle.AllowMailWait(ctx, "verify", address)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("mail throttle")
		return nil
	}
	if wait > 0 {
		return &apperr.Error{Kind: apperr.TooManyRequests, Code: "too_many_emails", RetryAfter: wait,
			Message: fmt.Sprintf("This address was sent too many links lately; try again in %d seconds.", wait)}
	}
	return nil
}

// ifAccount runs fn in a transaction when email names an account, and does
// nothing otherwise: endpoints that must not reveal which addresses have
// accounts answer the same either way.
func (s *Service) ifAccount(ctx context.Context, email string, fn func(tx *sqlx.Tx, u *User) error) error {
	email, err := NormalizeEmail("email", email)
	if err != nil {
		return err
	}
	return postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		u, err := s.Users.UserByEmail(ctx, tx, email)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(tx, u)
	})
}
