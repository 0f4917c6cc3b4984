// Package org runs organizations and what belongs to them: members and
// their roles, invitations and API keys, and reading the audit log. Every
// method takes the caller's Principal and runs its queries in one
// tenant.InOrg transaction, so Row Level Security backs every filter and the
// caller's role is checked in the same snapshot as the work.
//
// org depends on auth (account types, token helpers) and never the reverse:
// auth reaches organizations through its Orgs interface, which Service
// implements.
package org

import (
	"context"
	"crypto/subtle"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// APIKeyPrefix starts every API key, so scanners and humans recognise one.
const APIKeyPrefix = "keel_live_"

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 7 * 24 * time.Hour

// Service runs organizations.
type Service struct {
	DB    *sqlx.DB
	Store Store
	// BaseURL is APP_BASE_URL; invitation links start with it.
	BaseURL string
	Now     func() time.Time
	// Limits enforces the plan's seats (members plus live pending
	// invitations) and reports usage; nil enforces nothing, and Usage fails.
	Limits *plan.Limiter
	// Billing is told of a new organization and of each change of its
	// members, in the transaction that makes it; nil: nothing is billed.
	Billing BillingHooks
}

// BillingHooks is what organizations tell billing (*billing.Service).
type BillingHooks interface {
	// StartOrg gives a new organization its billing state (a trial or the
	// fallback plan); tx's tenant is the new organization.
	StartOrg(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID) error
	// SeatsChanged says orgID's member count changed; change names the
	// membership change once (it keys the subscription update, so a retry
	// does not repeat it).
	SeatsChanged(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, change string) error
}

func (s *Service) seatsChanged(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, change string) error {
	if s.Billing == nil {
		return nil
	}
	return s.Billing.SeatsChanged(ctx, tx, orgID, change)
}

var _ auth.Orgs = (*Service)(nil)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

var errLastOwner = apperr.New(apperr.Conflict, "last_owner", "An organization needs an owner: promote someone else first.")

func notFound(what string) error {
	return apperr.New(apperr.NotFound, "not_found", "No such "+what+" in this organization.")
}

// record writes an audit entry for an action p took, with details.
func record(ctx context.Context, tx *sqlx.Tx, p *tenant.Principal, meta audit.Meta, action, targetType, targetID string, details any) error {
	return audit.Record(ctx, tx, audit.By(p, meta, action, targetType, targetID).WithDetails(details))
}

// CreateWithOwner inserts an organization named name with ownerID as its
// owner and records it in the new organization's audit log, inside tx,
// leaving tx's tenant set to it. Registration and Create use it.
func (s *Service) CreateWithOwner(ctx context.Context, tx *sqlx.Tx, name string, ownerID uuid.UUID, meta audit.Meta) (uuid.UUID, error) {
	o := &Organization{ID: postgres.NewID(), Name: strings.TrimSpace(name)}
	if err := s.Store.CreateOrg(ctx, tx, o); err != nil {
		return uuid.Nil, err
	}
	if err := postgres.SetTenant(ctx, tx, o.ID); err != nil {
		return uuid.Nil, err
	}
	if err := s.Store.AddMember(ctx, tx, o.ID, ownerID, tenant.RoleOwner); err != nil {
		return uuid.Nil, err
	}
	if s.Billing != nil {
		if err := s.Billing.StartOrg(ctx, tx, o.ID); err != nil {
			return uuid.Nil, err
		}
	}
	err := audit.Record(ctx, tx, audit.Entry{OrgID: o.ID, ActorUserID: &ownerID, Action: "organization.created",
		TargetType: "organization", TargetID: o.ID.String(), IP: meta.IP, UserAgent: meta.UserAgent})
	return o.ID, err
}

// Memberships lists a user's organizations, oldest first.
func (s *Service) Memberships(ctx context.Context, q sqlx.QueryerContext, userID uuid.UUID) ([]auth.Membership, error) {
	return s.Store.UserMemberships(ctx, q, userID)
}

// Create makes a new organization with the caller as owner.
func (s *Service) Create(ctx context.Context, p *tenant.Principal, name string, meta audit.Meta) (*Organization, error) {
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	var o *Organization
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		if err := tenant.CheckActive(ctx, tx, p.OrgID); err != nil {
			return err
		}
		id, err := s.CreateWithOwner(ctx, tx, name, p.UserID, meta)
		if err != nil {
			return err
		}
		o, err = s.Store.Org(ctx, tx, id)
		return err
	})
	return o, err
}

// ListMine lists the caller's organizations with the caller's role in each;
// an API key sees its own organization.
func (s *Service) ListMine(ctx context.Context, p *tenant.Principal) ([]auth.Membership, error) {
	if !p.IsUser() {
		var out []auth.Membership
		err := tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, role string) error {
			o, err := s.Store.Org(ctx, tx, p.OrgID)
			if err != nil {
				return err
			}
			out = []auth.Membership{{OrgID: o.ID, OrgName: o.Name, Role: role, JoinedAt: o.CreatedAt}}
			return nil
		})
		return out, err
	}
	var out []auth.Membership
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		if err := tenant.CheckActive(ctx, tx, p.OrgID); err != nil {
			return err
		}
		var err error
		out, err = s.Store.UserMemberships(ctx, tx, p.UserID)
		return err
	})
	return out, err
}

// Current returns the caller's organization.
func (s *Service) Current(ctx context.Context, p *tenant.Principal) (*Organization, error) {
	var o *Organization
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, _ string) error {
		var err error
		o, err = s.Store.Org(ctx, tx, p.OrgID)
		return err
	})
	return o, err
}

// Rename changes the organization's name; admins and owners.
func (s *Service) Rename(ctx context.Context, p *tenant.Principal, name string, meta audit.Meta) (*Organization, error) {
	o := &Organization{ID: p.OrgID, Name: strings.TrimSpace(name)}
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleAdmin, func(tx *sqlx.Tx, _ string) error {
		if err := s.Store.RenameOrg(ctx, tx, o); err != nil {
			return err
		}
		return record(ctx, tx, p, meta, "organization.updated", "organization", o.ID.String(), map[string]string{"name": o.Name})
	})
	return o, err
}

// Members lists the organization's members; every member may.
func (s *Service) Members(ctx context.Context, p *tenant.Principal, pg tenant.Page) ([]Member, string, error) {
	return tenant.List(ctx, s.DB, p, pg, tenant.RoleMember, func(tx *sqlx.Tx, after *tenant.Cursor, limit int) ([]Member, error) {
		return s.Store.Members(ctx, tx, p.OrgID, after, limit)
	}, func(m *Member) (time.Time, uuid.UUID) { return m.CreatedAt, m.UserID })
}

// mayManage reports whether actorRole may change a member holding
// targetRole into newRole (newRole empty for removal): admins manage admins
// and members but never touch or create owners.
func mayManage(actorRole, targetRole, newRole string) bool {
	if actorRole == tenant.RoleOwner {
		return true
	}
	return actorRole == tenant.RoleAdmin && targetRole != tenant.RoleOwner && newRole != tenant.RoleOwner
}

// SetRole changes a member's role; admins and owners, with their own
// session (an API key never changes who holds power).
func (s *Service) SetRole(ctx context.Context, p *tenant.Principal, userID uuid.UUID, role string, meta audit.Meta) (*Member, error) {
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	var out *Member
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleAdmin, func(tx *sqlx.Tx, actorRole string) error {
		m, err := s.Store.Member(ctx, tx, p.OrgID, userID, true)
		if errors.Is(err, ErrNotFound) {
			return notFound("member")
		}
		if err != nil {
			return err
		}
		if !mayManage(actorRole, m.Role, role) {
			return apperr.New(apperr.Forbidden, "forbidden", "Only owners can change owners or make new ones.")
		}
		if m.Role == tenant.RoleOwner && role != tenant.RoleOwner {
			if err := s.keepAnOwner(ctx, tx, p.OrgID); err != nil {
				return err
			}
		}
		from := m.Role
		if err := s.Store.SetRole(ctx, tx, p.OrgID, userID, role); err != nil {
			return err
		}
		if out, err = s.Store.Member(ctx, tx, p.OrgID, userID, false); err != nil {
			return err
		}
		return record(ctx, tx, p, meta, "member.role_changed", "user", userID.String(), map[string]string{"from": from, "to": role})
	})
	return out, err
}

// keepAnOwner refuses a change that would leave the organization without
// an owner; it locks the owners' rows so concurrent demotions serialize.
func (s *Service) keepAnOwner(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID) error {
	n, err := s.Store.CountOwners(ctx, tx, orgID)
	if err != nil {
		return err
	}
	if n <= 1 {
		return errLastOwner
	}
	return nil
}

// RemoveMember removes a member; anyone may remove themselves (leave).
// Admins and owners remove others with their own session, not an API key.
func (s *Service) RemoveMember(ctx context.Context, p *tenant.Principal, userID uuid.UUID, meta audit.Meta) error {
	if !p.IsUser() {
		return tenant.ErrUserOnly
	}
	min := tenant.RoleAdmin
	self := p.UserID == userID
	if self {
		min = tenant.RoleMember
	}
	return tenant.InOrg(ctx, s.DB, p, min, func(tx *sqlx.Tx, actorRole string) error {
		m, err := s.Store.Member(ctx, tx, p.OrgID, userID, true)
		if errors.Is(err, ErrNotFound) {
			return notFound("member")
		}
		if err != nil {
			return err
		}
		if !self && !mayManage(actorRole, m.Role, "") {
			return apperr.New(apperr.Forbidden, "forbidden", "Only owners can remove owners.")
		}
		if m.Role == tenant.RoleOwner {
			if err := s.keepAnOwner(ctx, tx, p.OrgID); err != nil {
				return err
			}
		}
		if err := s.Store.RemoveMember(ctx, tx, p.OrgID, userID); err != nil {
			return err
		}
		if err := s.seatsChanged(ctx, tx, p.OrgID, "left:"+userID.String()+":"+postgres.NewID().String()); err != nil {
			return err
		}
		return record(ctx, tx, p, meta, "member.removed", "user", userID.String(), map[string]string{"role": m.Role})
	})
}

// AuditLog lists the organization's audit log matching f; admins and
// owners. 400 validation_failed for an action over 256 characters or an
// until not after since.
func (s *Service) AuditLog(ctx context.Context, p *tenant.Principal, f audit.Filter, pg tenant.Page) ([]audit.Entry, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	return tenant.List(ctx, s.DB, p, pg, tenant.RoleAdmin, func(tx *sqlx.Tx, after *tenant.Cursor, limit int) ([]audit.Entry, error) {
		return audit.List(ctx, tx, p.OrgID, f, after, limit)
	}, func(e *audit.Entry) (time.Time, uuid.UUID) { return e.CreatedAt, e.ID })
}

// Usage returns the organization's plan and each metric's use against its
// limit; any member may read it. Seats are counted live (members plus
// pending invitations that have not expired); apiUsed, when the caller
// knows it, is what the organization spent of its per-minute API budget.
func (s *Service) Usage(ctx context.Context, p *tenant.Principal, apiUsed *int64) (plan.Plan, []plan.Usage, error) {
	if s.Limits == nil {
		return plan.Plan{}, nil, errors.New("org: Usage needs Limits")
	}
	var (
		pl plan.Plan
		us []plan.Usage
	)
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, _ string) error {
		members, pending, err := s.Store.CountSeats(ctx, tx, p.OrgID, s.now())
		if err != nil {
			return err
		}
		counts := map[plan.Metric]int64{plan.Seats: members + pending}
		if apiUsed != nil {
			counts[plan.APIRequestsPerMinute] = *apiUsed
		}
		pl, us, err = s.Limits.Usage(ctx, tx, p.OrgID, counts)
		return err
	})
	return pl, us, err
}

// admitSeat refuses (402 plan_limit_reached) one more seat of orgID past
// its plan's limit. It counts under the seats counter's row lock, held
// until tx ends, beside the write that takes the seat, so two admissions
// racing for the last seat serialize and exactly one gets it. withPending
// counts live pending invitations as taken seats (inviting); without it
// only members count (accepting: the invitation held its own seat).
func (s *Service) admitSeat(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, withPending bool) error {
	if s.Limits == nil {
		return nil
	}
	return s.Limits.Admit(ctx, tx, orgID, plan.Seats, 1, func() (int64, error) {
		members, pending, err := s.Store.CountSeats(ctx, tx, orgID, s.now())
		if !withPending {
			pending = 0
		}
		return members + pending, err
	})
}

func equalDigest(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
