package org

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/jobs/task"
)

// Invite creates (or replaces) a pending invitation and mails its 7-day link.
func (s *Service) Invite(ctx context.Context, p *auth.Principal, email, role string, meta auth.Meta) (*orgdb.Invitation, error) {
	email, err := auth.NormalizeEmail("email", email)
	if err != nil {
		return nil, err
	}
	var inv *orgdb.Invitation
	err = s.inOrg(ctx, p, auth.RoleAdmin, func(tx *sqlx.Tx, actorRole string) error {
		if role == auth.RoleOwner && actorRole != auth.RoleOwner {
			return apperr.New(apperr.Forbidden, "forbidden", "Only owners can invite owners.")
		}
		u, err := s.Users.UserByEmail(ctx, tx, email)
		if err == nil {
			if _, err := s.Store.Member(ctx, tx, p.OrgID, u.ID, false); err == nil {
				return apperr.New(apperr.Conflict, "already_member", "This person is already a member.")
			} else if !errors.Is(err, orgdb.ErrNotFound) {
				return err
			}
		} else if !errors.Is(err, authdb.ErrNotFound) {
			return err
		}
		o, err := s.Store.Org(ctx, tx, p.OrgID)
		if err != nil {
			return err
		}
		token, hash := auth.NewOpaqueToken()
		inv = &orgdb.Invitation{ID: newID(), OrgID: p.OrgID, Email: email, Role: role, TokenHash: hash,
			ExpiresAt: s.now().Add(auth.InvitationTTL)}
		if p.IsUser() {
			inv.InvitedBy = &p.UserID
		}
		if err := s.Store.PutInvitation(ctx, tx, inv); err != nil {
			return err
		}
		if err := s.mailInvitation(ctx, tx, p, inv, o.Name, token); err != nil {
			return err
		}
		return s.audit(ctx, tx, p, meta, "invitation.sent", "invitation", inv.ID.String(), map[string]string{"email": email, "role": role})
	})
	return inv, err
}

func (s *Service) mailInvitation(ctx context.Context, tx *sqlx.Tx, p *auth.Principal, inv *orgdb.Invitation, orgName, token string) error {
	inviter := "A teammate"
	if p.IsUser() {
		if u, err := s.Users.UserByID(ctx, tx, p.UserID, false); err == nil {
			inviter = u.Name
		}
	}
	t, err := task.NewEmailSendTask(inv.OrgID, task.EmailPayload{To: inv.Email, Template: "invitation", InvitationID: &inv.ID,
		Data: map[string]string{"inviter": inviter, "organization": orgName, "role": inv.Role,
			"link": auth.Link(s.BaseURL, "/accept-invitation", token), "days": "7"}})
	if err != nil {
		return err
	}
	_, err = outbox.Add(ctx, tx, t)
	return err
}

// Invitations lists pending invitations; admins and owners.
func (s *Service) Invitations(ctx context.Context, p *auth.Principal, pg Page) ([]orgdb.Invitation, string, error) {
	return listPage(ctx, s, p, pg, auth.RoleAdmin, func(tx *sqlx.Tx, after *orgdb.Cursor, limit int) ([]orgdb.Invitation, error) {
		return s.Store.Invitations(ctx, tx, p.OrgID, after, limit)
	}, func(i *orgdb.Invitation) (time.Time, uuid.UUID) { return i.CreatedAt, i.ID })
}

// RevokeInvitation deletes a pending invitation; its link stops working.
func (s *Service) RevokeInvitation(ctx context.Context, p *auth.Principal, id uuid.UUID, meta auth.Meta) error {
	return s.inOrg(ctx, p, auth.RoleAdmin, func(tx *sqlx.Tx, actorRole string) error {
		inv, err := s.Store.Invitation(ctx, tx, p.OrgID, id, true)
		if errors.Is(err, orgdb.ErrNotFound) {
			return notFound("invitation")
		}
		if err != nil {
			return err
		}
		if inv.Role == auth.RoleOwner && actorRole != auth.RoleOwner {
			return apperr.New(apperr.Forbidden, "forbidden", "Only owners can revoke an owner's invitation.")
		}
		if err := s.Store.DeleteInvitation(ctx, tx, p.OrgID, id); err != nil {
			return err
		}
		return s.audit(ctx, tx, p, meta, "invitation.revoked", "invitation", id.String(), map[string]string{"email": inv.Email})
	})
}

// ResendInvitation mails a pending invitation again with a new link and a
// fresh 7 days; the old link stops working.
func (s *Service) ResendInvitation(ctx context.Context, p *auth.Principal, id uuid.UUID, meta auth.Meta) (*orgdb.Invitation, error) {
	var inv *orgdb.Invitation
	err := s.inOrg(ctx, p, auth.RoleAdmin, func(tx *sqlx.Tx, actorRole string) error {
		var err error
		inv, err = s.Store.Invitation(ctx, tx, p.OrgID, id, true)
		if errors.Is(err, orgdb.ErrNotFound) {
			return notFound("invitation")
		}
		if err != nil {
			return err
		}
		if inv.Role == auth.RoleOwner && actorRole != auth.RoleOwner {
			return apperr.New(apperr.Forbidden, "forbidden", "Only owners can resend an owner's invitation.")
		}
		token, hash := auth.NewOpaqueToken()
		inv.TokenHash, inv.ExpiresAt = hash, s.now().Add(auth.InvitationTTL)
		if err := s.Store.RefreshInvitation(ctx, tx, inv); err != nil {
			return err
		}
		o, err := s.Store.Org(ctx, tx, p.OrgID)
		if err != nil {
			return err
		}
		if err := s.mailInvitation(ctx, tx, p, inv, o.Name, token); err != nil {
			return err
		}
		return s.audit(ctx, tx, p, meta, "invitation.resent", "invitation", id.String(), map[string]string{"email": inv.Email})
	})
	return inv, err
}
