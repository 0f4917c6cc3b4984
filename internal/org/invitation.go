package org

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
	"github.com/keelhq/keel/jobs/task"
)

// Invite creates (or replaces) a pending invitation and queues the email
// with its 7-day link; admins and owners, with their own session. Replacing
// an owner's pending invitation is revoking it, so only owners may. A new
// invitation takes one of the plan's seats (402 plan_limit_reached when
// members plus live pending invitations fill them); replacing a live one
// does not. The invitation is stored without a token: the worker mints it
// when it sends the email (InvitationToMail, MintInvitationLink), so no
// usable token is ever at rest but as a hash.
func (s *Service) Invite(ctx context.Context, p *tenant.Principal, email, role string, meta audit.Meta) (*Invitation, error) {
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	email, err := auth.NormalizeEmail("email", email)
	if err != nil {
		return nil, err
	}
	var inv *Invitation
	err = tenant.InOrg(ctx, s.DB, p, tenant.RoleAdmin, func(tx *sqlx.Tx, actorRole string) error {
		if role == tenant.RoleOwner && actorRole != tenant.RoleOwner {
			return apperr.New(apperr.Forbidden, "forbidden", "Only owners can invite owners.")
		}
		if _, err := s.Store.MemberByEmail(ctx, tx, p.OrgID, email); err == nil {
			return apperr.New(apperr.Conflict, "already_member", "This person is already a member.")
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		newSeat := true
		if old, err := s.Store.PendingInvitation(ctx, tx, p.OrgID, email); err == nil {
			if !mayTouchInvitation(actorRole, old) {
				return apperr.New(apperr.Forbidden, "forbidden", "Only owners can replace an owner's invitation.")
			}
			// A live invitation to the address already holds its seat; an
			// expired one holds none.
			newSeat = !old.ExpiresAt.After(s.now())
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if newSeat {
			if err := s.admitSeat(ctx, tx, p.OrgID, true); err != nil {
				return err
			}
		}
		o, err := s.Store.Org(ctx, tx, p.OrgID)
		if err != nil {
			return err
		}
		inv = &Invitation{ID: postgres.NewID(), OrgID: p.OrgID, Email: email, Role: role,
			InvitedBy: &p.UserID, ExpiresAt: s.now().Add(InvitationTTL)}
		if err := s.Store.PutInvitation(ctx, tx, inv); err != nil {
			return err
		}
		if err := s.mailInvitation(ctx, tx, p, inv, o.Name); err != nil {
			return err
		}
		return record(ctx, tx, p, meta, "invitation.sent", "invitation", inv.ID.String(), map[string]string{"email": email, "role": role})
	})
	return inv, err
}

// mayTouchInvitation reports whether actorRole may revoke, resend or
// replace inv: an owner's invitation is for owners to manage.
func mayTouchInvitation(actorRole string, inv *Invitation) bool {
	return inv.Role != tenant.RoleOwner || actorRole == tenant.RoleOwner
}

// mailInvitation queues inv's email; its payload names the invitation and
// the worker mints the link.
func (s *Service) mailInvitation(ctx context.Context, tx *sqlx.Tx, p *tenant.Principal, inv *Invitation, orgName string) error {
	inviter := "A teammate"
	if p.IsUser() {
		if name, err := s.Store.UserName(ctx, tx, p.UserID); err == nil {
			inviter = name
		}
	}
	t, err := task.NewEmailSendTask(inv.OrgID, task.EmailPayload{To: inv.Email, Template: "invitation", InvitationID: &inv.ID,
		Data: map[string]string{"inviter": inviter, "organization": orgName, "role": inv.Role, "days": "7"}})
	if err != nil {
		return err
	}
	_, err = outbox.Add(ctx, tx, t)
	return err
}

// Invitations lists pending invitations; admins and owners.
func (s *Service) Invitations(ctx context.Context, p *tenant.Principal, pg tenant.Page) ([]Invitation, string, error) {
	return tenant.List(ctx, s.DB, p, pg, tenant.RoleAdmin, func(tx *sqlx.Tx, after *tenant.Cursor, limit int) ([]Invitation, error) {
		return s.Store.Invitations(ctx, tx, p.OrgID, after, limit)
	}, func(i *Invitation) (time.Time, uuid.UUID) { return i.CreatedAt, i.ID })
}

// RevokeInvitation deletes a pending invitation; its link stops working.
// Admins and owners, with their own session.
func (s *Service) RevokeInvitation(ctx context.Context, p *tenant.Principal, id uuid.UUID, meta audit.Meta) error {
	if !p.IsUser() {
		return tenant.ErrUserOnly
	}
	return tenant.InOrg(ctx, s.DB, p, tenant.RoleAdmin, func(tx *sqlx.Tx, actorRole string) error {
		inv, err := s.Store.Invitation(ctx, tx, p.OrgID, id, true)
		if errors.Is(err, ErrNotFound) {
			return notFound("invitation")
		}
		if err != nil {
			return err
		}
		if !mayTouchInvitation(actorRole, inv) {
			return apperr.New(apperr.Forbidden, "forbidden", "Only owners can revoke an owner's invitation.")
		}
		if err := s.Store.DeleteInvitation(ctx, tx, p.OrgID, id); err != nil {
			return err
		}
		return record(ctx, tx, p, meta, "invitation.revoked", "invitation", id.String(), map[string]string{"email": inv.Email})
	})
}

// ResendInvitation mails a pending invitation again with a new link and a
// fresh 7 days; the old link stops working at once (its hash is cleared)
// and the worker mints the new one. Admins and owners, with their own
// session.
func (s *Service) ResendInvitation(ctx context.Context, p *tenant.Principal, id uuid.UUID, meta audit.Meta) (*Invitation, error) {
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	var inv *Invitation
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleAdmin, func(tx *sqlx.Tx, actorRole string) error {
		var err error
		inv, err = s.Store.Invitation(ctx, tx, p.OrgID, id, true)
		if errors.Is(err, ErrNotFound) {
			return notFound("invitation")
		}
		if err != nil {
			return err
		}
		if !mayTouchInvitation(actorRole, inv) {
			return apperr.New(apperr.Forbidden, "forbidden", "Only owners can resend an owner's invitation.")
		}
		// Resending an expired invitation brings it back: it takes a seat again.
		if !inv.ExpiresAt.After(s.now()) {
			if err := s.admitSeat(ctx, tx, p.OrgID, true); err != nil {
				return err
			}
		}
		inv.TokenHash, inv.ExpiresAt = nil, s.now().Add(InvitationTTL)
		if err := s.Store.RefreshInvitation(ctx, tx, inv); err != nil {
			return err
		}
		o, err := s.Store.Org(ctx, tx, p.OrgID)
		if err != nil {
			return err
		}
		if err := s.mailInvitation(ctx, tx, p, inv, o.Name); err != nil {
			return err
		}
		return record(ctx, tx, p, meta, "invitation.resent", "invitation", id.String(), map[string]string{"email": inv.Email})
	})
	return inv, err
}

// OpenInvitation finds the live invitation with the token hash, sets tx's
// tenant to its organization and locks it. It answers ErrNotFound for an
// unknown, used or expired token and tenant.ErrSuspended when the
// organization is suspended.
func (s *Service) OpenInvitation(ctx context.Context, tx *sqlx.Tx, tokenHash []byte) (*auth.Invite, error) {
	inv, err := s.Store.InvitationByToken(ctx, tx, tokenHash)
	if err != nil {
		return nil, err
	}
	if err := tenant.CheckActive(ctx, tx, inv.OrgID); err != nil {
		return nil, err
	}
	return &auth.Invite{ID: inv.ID, OrgID: inv.OrgID, Email: inv.Email, Role: inv.Role}, nil
}

// JoinByInvitation makes userID a member with the invitation's role (an
// existing member keeps theirs: accepting changes nothing but the
// invitation), marks the invitation used and audits it, inside tx (whose
// tenant OpenInvitation set). It returns the member's role. A new member
// must fit the plan's seats counting members alone (the invitation held
// its seat until now): 402 plan_limit_reached when the organization is
// already full, e.g. after moving to a smaller plan.
func (s *Service) JoinByInvitation(ctx context.Context, tx *sqlx.Tx, inv *auth.Invite, userID uuid.UUID, meta audit.Meta) (string, error) {
	role := inv.Role
	if m, err := s.Store.Member(ctx, tx, inv.OrgID, userID, true); err == nil {
		role = m.Role
	} else if !errors.Is(err, ErrNotFound) {
		return "", err
	} else if err := s.admitSeat(ctx, tx, inv.OrgID, false); err != nil {
		return "", err
	} else if err := s.Store.AddMember(ctx, tx, inv.OrgID, userID, inv.Role); err != nil {
		return "", err
	} else if err := s.seatsChanged(ctx, tx, inv.OrgID, "joined:"+inv.ID.String()); err != nil {
		return "", err
	}
	if err := s.Store.AcceptInvitation(ctx, tx, inv.OrgID, inv.ID); err != nil {
		return "", err
	}
	err := audit.Record(ctx, tx, audit.Entry{OrgID: inv.OrgID, ActorUserID: &userID, Action: "invitation.accepted",
		TargetType: "invitation", TargetID: inv.ID.String(), IP: meta.IP, UserAgent: meta.UserAgent})
	return role, err
}

// InvitationToMail is the worker's first step in mailing an invitation:
// it locks invitation id as orgID's tenant transaction tx sees it and
// returns the address it is for, when its link may still be mailed. ok is
// false when there is nothing to send: the invitation is not there (under
// Row Level Security another organization's invitation is not there at
// all; a revoked or replaced one is gone), accepted, expired (its 7 days
// run from the invitation or resend, not from the send), or already minted
// (mailed by an earlier task; a resend clears it), unless again: the task
// that minted it never recorded SMTP's acceptance, so it mints and sends
// anew. The lock makes a revoke or an acceptance racing the mint wait for
// it, and one that committed first stops it.
func (s *Service) InvitationToMail(ctx context.Context, tx *sqlx.Tx, orgID, id uuid.UUID, again bool) (to string, ok bool, err error) {
	inv, err := s.Store.Invitation(ctx, tx, orgID, id, true)
	if errors.Is(err, ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("invitation to mail: %w", err)
	}
	if (inv.TokenHash != nil && !again) || !inv.ExpiresAt.After(s.now()) {
		return "", false, nil
	}
	return inv.Email, true, nil
}

// MintInvitationLink draws the token of invitation id (locked by
// InvitationToMail in the same tx), stores its hash and returns the link to
// mail, under BaseURL. The token exists nowhere but in the returned link.
// Minting again replaces the hash, so only the newest mail's link opens.
func (s *Service) MintInvitationLink(ctx context.Context, tx *sqlx.Tx, orgID, id uuid.UUID, again bool) (string, error) {
	token, hash := auth.NewOpaqueToken()
	if err := s.Store.MintInvitation(ctx, tx, orgID, id, hash, again); err != nil {
		return "", fmt.Errorf("mint invitation link: %w", err)
	}
	return email.Link(s.BaseURL, "/accept-invitation", token), nil
}
