// Package org runs organizations and what belongs to them: members and
// their roles, invitations, API keys and the audit log. Every method takes
// the caller's Principal and runs its queries in a transaction scoped to the
// caller's organization, so Row Level Security backs every filter.
package org

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// APIKeyPrefix starts every API key, so scanners and humans recognise one.
const APIKeyPrefix = "keel_live_"

// Service runs organizations.
type Service struct {
	DB    *sqlx.DB
	Store Store
	Users Users
	// BaseURL is APP_BASE_URL; invitation links start with it.
	BaseURL string
	Now     func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

var (
	errNoOrg     = apperr.New(apperr.Forbidden, "no_organization", "You belong to no organization; create one or accept an invitation.")
	errForbidden = apperr.New(apperr.Forbidden, "forbidden", "Your role does not allow this.")
	errLastOwner = apperr.New(apperr.Conflict, "last_owner", "An organization needs an owner: promote someone else first.")
	errUserOnly  = apperr.New(apperr.Forbidden, "user_required", "This endpoint needs a user's access token, not an API key.")
)

func notFound(what string) error {
	return apperr.New(apperr.NotFound, "not_found", "No such "+what+" in this organization.")
}

// inOrg runs fn in a transaction scoped to the caller's organization, with
// the caller's current role: re-read from the membership for users (a token
// may be up to 15 minutes older than a role change), the key's role for API
// keys.
func (s *Service) inOrg(ctx context.Context, p *auth.Principal, min string, fn func(tx *sqlx.Tx, role string) error) error {
	if p.OrgID == uuid.Nil {
		return errNoOrg
	}
	return postgres.InTx(ctx, s.DB, p.OrgID, func(tx *sqlx.Tx) error {
		role := p.Role
		if p.IsUser() {
			m, err := s.Store.Member(ctx, tx, p.OrgID, p.UserID, false)
			if errors.Is(err, orgdb.ErrNotFound) {
				return apperr.New(apperr.Forbidden, "not_a_member", "You are no longer a member of this organization.")
			}
			if err != nil {
				return err
			}
			role = m.Role
		}
		if !auth.RoleAtLeast(role, min) {
			return errForbidden
		}
		return fn(tx, role)
	})
}

func (s *Service) audit(ctx context.Context, tx *sqlx.Tx, p *auth.Principal, meta auth.Meta, action, targetType, targetID string, details any) error {
	e := &orgdb.AuditEntry{OrgID: p.OrgID, Action: action, TargetType: targetType, TargetID: targetID, IP: meta.IP, UserAgent: meta.UserAgent}
	if p.IsUser() {
		e.ActorUserID = &p.UserID
	} else {
		e.ActorAPIKeyID = &p.APIKeyID
	}
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			return err
		}
		e.Details = b
	}
	return s.Store.AddAudit(ctx, tx, e)
}

// CheckActive returns auth.ErrSuspended when the organization is suspended.
// Every authenticated request calls it, so it is one indexed read.
func (s *Service) CheckActive(ctx context.Context, orgID uuid.UUID) error {
	if orgID == uuid.Nil {
		return nil
	}
	at, err := s.Store.SuspendedAt(ctx, s.DB, orgID)
	if errors.Is(err, orgdb.ErrNotFound) {
		return apperr.New(apperr.Unauthenticated, "unauthenticated", "The organization no longer exists.")
	}
	if err != nil {
		return err
	}
	if at != nil {
		return auth.ErrSuspended
	}
	return nil
}

// Create makes a new organization with the caller as owner.
func (s *Service) Create(ctx context.Context, p *auth.Principal, name string, meta auth.Meta) (*orgdb.Organization, error) {
	if !p.IsUser() {
		return nil, errUserOnly
	}
	o := &orgdb.Organization{ID: newID(), Name: strings.TrimSpace(name)}
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		return auth.CreateOrgWithOwner(ctx, tx, s.Store, o, p.UserID, meta)
	})
	return o, err
}

// ListMine lists the caller's organizations with the caller's role in each.
func (s *Service) ListMine(ctx context.Context, p *auth.Principal) ([]auth.MembershipView, error) {
	if !p.IsUser() {
		if p.OrgID == uuid.Nil {
			return nil, nil
		}
		o, err := s.Store.Org(ctx, s.DB, p.OrgID)
		if err != nil {
			return nil, err
		}
		return []auth.MembershipView{{OrgID: o.ID, OrgName: o.Name, Role: p.Role, JoinedAt: o.CreatedAt}}, nil
	}
	return auth.MembershipsOf(ctx, s.DB, s.Store, p.UserID)
}

// Current returns the caller's organization.
func (s *Service) Current(ctx context.Context, p *auth.Principal) (*orgdb.Organization, error) {
	var o *orgdb.Organization
	err := s.inOrg(ctx, p, auth.RoleMember, func(tx *sqlx.Tx, _ string) error {
		var err error
		o, err = s.Store.Org(ctx, tx, p.OrgID)
		return err
	})
	return o, err
}

// Rename changes the organization's name; admins and owners.
func (s *Service) Rename(ctx context.Context, p *auth.Principal, name string, meta auth.Meta) (*orgdb.Organization, error) {
	o := &orgdb.Organization{ID: p.OrgID, Name: strings.TrimSpace(name)}
	err := s.inOrg(ctx, p, auth.RoleAdmin, func(tx *sqlx.Tx, _ string) error {
		if err := s.Store.RenameOrg(ctx, tx, o); err != nil {
			return err
		}
		return s.audit(ctx, tx, p, meta, "organization.updated", "organization", o.ID.String(), map[string]string{"name": o.Name})
	})
	return o, err
}

// Page is a list request: Limit 1..100 and an opaque cursor.
type Page struct {
	Limit  int
	Cursor string
}

// ParseCursor decodes a cursor made by EncodeCursor.
func ParseCursor(c string) (*orgdb.Cursor, error) {
	if c == "" {
		return nil, nil
	}
	bad := apperr.Validation(apperr.FieldError{Field: "cursor", Message: "is not a cursor this API returned"})
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, bad
	}
	at, id, ok := strings.Cut(string(b), "|")
	if !ok {
		return nil, bad
	}
	t, err1 := time.Parse(time.RFC3339Nano, at)
	u, err2 := uuid.Parse(id)
	if err1 != nil || err2 != nil {
		return nil, bad
	}
	return &orgdb.Cursor{At: t, ID: u}, nil
}

// EncodeCursor makes the cursor that continues after a row.
func EncodeCursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id.String()))
}

// listPage runs one keyset page of a tenant list for a caller holding at
// least min: it fetches one row more than asked to learn whether a next page
// exists, and makes the cursor from the last row's key.
func listPage[T any](ctx context.Context, s *Service, p *auth.Principal, pg Page, min string,
	fetch func(tx *sqlx.Tx, after *orgdb.Cursor, limit int) ([]T, error), key func(*T) (time.Time, uuid.UUID)) ([]T, string, error) {
	after, err := ParseCursor(pg.Cursor)
	if err != nil {
		return nil, "", err
	}
	var rows []T
	err = s.inOrg(ctx, p, min, func(tx *sqlx.Tx, _ string) error {
		rows, err = fetch(tx, after, pg.Limit+1)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > pg.Limit {
		rows = rows[:pg.Limit]
		next = EncodeCursor(key(&rows[len(rows)-1]))
	}
	return rows, next, nil
}

// Members lists the organization's members; every member may.
func (s *Service) Members(ctx context.Context, p *auth.Principal, pg Page) ([]orgdb.MemberRow, string, error) {
	return listPage(ctx, s, p, pg, auth.RoleMember, func(tx *sqlx.Tx, after *orgdb.Cursor, limit int) ([]orgdb.MemberRow, error) {
		return s.Store.Members(ctx, tx, p.OrgID, after, limit)
	}, func(m *orgdb.MemberRow) (time.Time, uuid.UUID) { return m.CreatedAt, m.UserID })
}

// mayManage reports whether actorRole may change a member holding
// targetRole into newRole (newRole empty for removal): admins manage admins
// and members but never touch or create owners.
func mayManage(actorRole, targetRole, newRole string) bool {
	if actorRole == auth.RoleOwner {
		return true
	}
	return actorRole == auth.RoleAdmin && targetRole != auth.RoleOwner && newRole != auth.RoleOwner
}

// SetRole changes a member's role.
func (s *Service) SetRole(ctx context.Context, p *auth.Principal, userID uuid.UUID, role string, meta auth.Meta) (*orgdb.MemberRow, error) {
	var out *orgdb.MemberRow
	err := s.inOrg(ctx, p, auth.RoleAdmin, func(tx *sqlx.Tx, actorRole string) error {
		m, err := s.Store.Member(ctx, tx, p.OrgID, userID, true)
		if errors.Is(err, orgdb.ErrNotFound) {
			return notFound("member")
		}
		if err != nil {
			return err
		}
		if !mayManage(actorRole, m.Role, role) {
			return apperr.New(apperr.Forbidden, "forbidden", "Only owners can change owners or make new ones.")
		}
		if m.Role == auth.RoleOwner && role != auth.RoleOwner {
			n, err := s.Store.CountOwners(ctx, tx, p.OrgID)
			if err != nil {
				return err
			}
			if n <= 1 {
				return errLastOwner
			}
		}
		from := m.Role
		m.Role = role
		if err := s.Store.SetRole(ctx, tx, m); err != nil {
			return err
		}
		u, err := s.Users.UserByID(ctx, tx, userID, false)
		if err != nil {
			return err
		}
		out = &orgdb.MemberRow{Membership: *m, Email: u.Email, Name: u.Name}
		return s.audit(ctx, tx, p, meta, "member.role_changed", "user", userID.String(), map[string]string{"from": from, "to": role})
	})
	return out, err
}

// RemoveMember removes a member; anyone may remove themselves (leave).
func (s *Service) RemoveMember(ctx context.Context, p *auth.Principal, userID uuid.UUID, meta auth.Meta) error {
	min := auth.RoleAdmin
	self := p.IsUser() && p.UserID == userID
	if self {
		min = auth.RoleMember
	}
	return s.inOrg(ctx, p, min, func(tx *sqlx.Tx, actorRole string) error {
		m, err := s.Store.Member(ctx, tx, p.OrgID, userID, true)
		if errors.Is(err, orgdb.ErrNotFound) {
			return notFound("member")
		}
		if err != nil {
			return err
		}
		if !self && !mayManage(actorRole, m.Role, "") {
			return apperr.New(apperr.Forbidden, "forbidden", "Only owners can remove owners.")
		}
		if m.Role == auth.RoleOwner {
			n, err := s.Store.CountOwners(ctx, tx, p.OrgID)
			if err != nil {
				return err
			}
			if n <= 1 {
				return errLastOwner
			}
		}
		if err := s.Store.RemoveMember(ctx, tx, p.OrgID, userID); err != nil {
			return err
		}
		return s.audit(ctx, tx, p, meta, "member.removed", "user", userID.String(), map[string]string{"role": m.Role})
	})
}

// AuditLog lists the organization's audit log; admins and owners.
func (s *Service) AuditLog(ctx context.Context, p *auth.Principal, pg Page) ([]orgdb.AuditEntry, string, error) {
	return listPage(ctx, s, p, pg, auth.RoleAdmin, func(tx *sqlx.Tx, after *orgdb.Cursor, limit int) ([]orgdb.AuditEntry, error) {
		return s.Store.Audit(ctx, tx, p.OrgID, after, limit)
	}, func(e *orgdb.AuditEntry) (time.Time, uuid.UUID) { return e.CreatedAt, e.ID })
}

func newID() uuid.UUID { return auth.NewID() }

func equalDigest(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
