package auth

import (
	"context"
	"errors"
	"strings"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// AcceptInput accepts an invitation. Name and Password are for an invitee
// without an account, who registers through the link.
type AcceptInput struct {
	Token    string
	Name     string
	Password string
}

// Accepted is the membership an acceptance created; Session is set when the
// acceptance also created the account, so the new user is logged in.
type Accepted struct {
	OrgID   uuid.UUID
	Role    string
	Session *Session
}

// AcceptInvitation joins the invitation's organization. A logged-in caller
// must be the invited address; an anonymous caller registers (their email
// counts as verified: the link reached it) unless an account already has
// that address, in which case they must log in first.
func (s *Service) AcceptInvitation(ctx context.Context, p *tenant.Principal, in AcceptInput, meta audit.Meta) (*Accepted, error) {
	if p != nil && !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	var hash string
	if p == nil && in.Password != "" {
		if err := CheckPassword("password", in.Password); err != nil {
			return nil, err
		}
		h, err := s.Hasher.Hash(ctx, in.Password)
		if err != nil {
			return nil, err
		}
		hash = h
	}
	var out *Accepted
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		inv, err := s.Orgs.OpenInvitation(ctx, tx, HashToken(in.Token))
		if errors.Is(err, ErrNotFound) {
			return errBadToken
		}
		if err != nil {
			return err
		}
		var u *User
		if p != nil {
			if u, err = s.Users.UserByID(ctx, tx, p.UserID, true); err != nil {
				return err
			}
			if u.Email != inv.Email {
				return apperr.New(apperr.Forbidden, "invitation_email_mismatch",
					"This invitation was sent to another email address; log in with that address to accept it.")
			}
		} else {
			existing, err := s.Users.UserByEmail(ctx, tx, inv.Email)
			switch {
			case err == nil && existing != nil:
				return apperr.New(apperr.Unauthenticated, "login_required",
					"An account with this email already exists; log in and accept the invitation again.")
			case !errors.Is(err, ErrNotFound):
				return err
			}
			var fields []apperr.FieldError
			if strings.TrimSpace(in.Name) == "" {
				fields = append(fields, apperr.FieldError{Field: "name", Message: "is required to create your account"})
			}
			if hash == "" {
				fields = append(fields, apperr.FieldError{Field: "password", Message: "is required to create your account"})
			}
			if len(fields) > 0 {
				return apperr.Validation(fields...)
			}
			now := s.now()
			u = &User{ID: postgres.NewID(), Email: inv.Email, Name: strings.TrimSpace(in.Name), PasswordHash: hash, EmailVerifiedAt: &now}
			if err := s.Users.CreateUser(ctx, tx, u); err != nil {
				return err
			}
		}
		if u.EmailVerifiedAt == nil {
			now := s.now()
			u.EmailVerifiedAt = &now
			if err := s.Users.UpdateUser(ctx, tx, u); err != nil {
				return err
			}
		}
		role, err := s.Orgs.JoinByInvitation(ctx, tx, inv, u.ID, meta)
		if err != nil {
			return err
		}
		out = &Accepted{OrgID: inv.OrgID, Role: role}
		if p == nil {
			out.Session, err = s.openSession(ctx, tx, u.ID, inv.OrgID, role, uuid.Nil, "")
		}
		return err
	})
	if errors.Is(err, ErrEmailTaken) {
		return nil, apperr.New(apperr.Unauthenticated, "login_required",
			"An account with this email already exists; log in and accept the invitation again.")
	}
	return out, err
}
