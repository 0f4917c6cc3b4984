package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// UserStore reads and changes accounts for the admin user routes. Every
// method runs on the admin role's transaction it is handed; a user that
// does not exist is postgres.ErrNotFound.
type UserStore interface {
	// ListUsers returns up to limit users matching f, newest first
	// (created_at, id), after the cursor.
	ListUsers(ctx context.Context, q sqlx.QueryerContext, f UserFilter, after *tenant.Cursor, limit int) ([]UserSummary, error)
	// GetUser returns one user's account; ErrNotFound when there is none.
	GetUser(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) (*UserSummary, error)
	// UserMemberships returns the user's memberships, oldest first.
	UserMemberships(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) ([]UserMembership, error)
	// UserSessions returns the user's logins (refresh-token families) with
	// a token neither revoked, rotated nor expired at now, newest first.
	UserSessions(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID, now time.Time) ([]UserSession, error)
	// DisableUser sets disabled_at and the reason unless the user is
	// already disabled; it reports whether it changed the row
	// (ErrNotFound when there is no such user).
	DisableUser(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, at time.Time, reason string) (bool, error)
	// EnableUser clears disabled_at and the reason; it reports whether the
	// user was disabled (ErrNotFound when there is no such user).
	EnableUser(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, at time.Time) (bool, error)
	// RevokeUserSessions revokes every refresh token of the user and
	// returns how many logins that were still live at now it ended.
	RevokeUserSessions(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, now time.Time) (int, error)
	// RevokeUserAPIKeys revokes every API key the user created, in every
	// organization, and returns how many per organization.
	RevokeUserAPIKeys(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, now time.Time) (map[uuid.UUID]int, error)
}

// UserFilter narrows the user list. Query is matched, case-insensitively,
// as a substring of the email or the name; a query that is a UUID finds
// that user only. Empty lists everyone.
type UserFilter struct {
	Query string
	ID    uuid.UUID
}

// UserSummary is an account as the admin user routes show it.
type UserSummary struct {
	ID               uuid.UUID
	Email            string
	Name             string
	CreatedAt        time.Time
	EmailVerified    bool
	TwoFactorEnabled bool
	PlatformAdmin    bool
	DisabledAt       *time.Time
	DisabledReason   string
	LastLoginAt      *time.Time
	Organizations    int
}

// UserMembership is one organization a user belongs to.
type UserMembership struct {
	OrgID     uuid.UUID
	OrgName   string
	Role      string
	Suspended bool
	JoinedAt  time.Time
}

// UserSession is one live login: a refresh-token family.
type UserSession struct {
	FamilyID        uuid.UUID
	OpenedAt        time.Time
	LastRefreshedAt time.Time
	ExpiresAt       time.Time
	SecondFactor    string
	ActiveOrgID     uuid.UUID // uuid.Nil: none
}

// UserDetail is GET /admin/users/{id}: the account, where it belongs and
// its live logins.
type UserDetail struct {
	UserSummary
	Memberships []UserMembership
	Sessions    []UserSession
}

// Refusals of the user routes.
var (
	ErrDisableSelf = apperr.New(apperr.Conflict, "cannot_disable_self",
		"You cannot disable your own account; ask another platform admin.")
	errQueryTooLong = apperr.Validation(apperr.FieldError{Field: "q", Message: "must be at most 200 characters"})
)

// ListUsers is GET /admin/users: one page of accounts matching query,
// newest first, audited as a platform row admin.users_listed naming the
// query.
func (s *Service) ListUsers(ctx context.Context, a *Admin, meta audit.Meta, query string, pg tenant.Page) ([]UserSummary, string, error) {
	query = strings.TrimSpace(query)
	if utf8.RuneCountInString(query) > 200 {
		return nil, "", errQueryTooLong
	}
	after, err := tenant.ParseCursor(pg.Cursor)
	if err != nil {
		return nil, "", err
	}
	f := UserFilter{Query: query}
	if id, err := uuid.Parse(query); err == nil {
		f = UserFilter{ID: id}
	}
	var rows []UserSummary
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		if rows, err = s.Store.ListUsers(ctx, tx, f, after, pg.Limit+1); err != nil {
			return fmt.Errorf("list users: %w", err)
		}
		return record(ctx, tx, a, meta, uuid.Nil, "admin.users_listed", "user", "",
			map[string]any{"q": query, "limit": pg.Limit, "continued": after != nil})
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > pg.Limit {
		rows = rows[:pg.Limit]
		last := rows[len(rows)-1]
		next = tenant.EncodeCursor(last.CreatedAt, last.ID)
	}
	return rows, next, nil
}

// User is GET /admin/users/{id}, audited as a platform row
// admin.user_viewed. An unknown user is 404 not_found.
func (s *Service) User(ctx context.Context, a *Admin, meta audit.Meta, id uuid.UUID) (*UserDetail, error) {
	var d *UserDetail
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		if d, err = s.userDetail(ctx, tx, id); err != nil {
			return err
		}
		return record(ctx, tx, a, meta, uuid.Nil, "admin.user_viewed", "user", id.String(), nil)
	})
	return d, err
}

// userDetail reads the account, its memberships and live logins.
func (s *Service) userDetail(ctx context.Context, tx *sqlx.Tx, id uuid.UUID) (*UserDetail, error) {
	u, err := s.Store.GetUser(ctx, tx, id)
	if errors.Is(err, postgres.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	d := &UserDetail{UserSummary: *u}
	if d.Memberships, err = s.Store.UserMemberships(ctx, tx, id); err != nil {
		return nil, fmt.Errorf("user memberships: %w", err)
	}
	if d.Sessions, err = s.Store.UserSessions(ctx, tx, id, s.now()); err != nil {
		return nil, fmt.Errorf("user sessions: %w", err)
	}
	return d, nil
}

// DisableUser is POST /admin/users/{id}/disable. In one transaction it
// marks the account disabled with reason, revokes every refresh token of
// the user and every API key the user created (in every organization), and
// audits it as a platform row admin.user_disabled and a row in each
// organization the user belongs to or had a key revoked in. Access tokens
// already issued stop at once too: every route reads disabled_at. An admin
// cannot disable themselves (409 cannot_disable_self). Disabling a
// disabled user changes nothing (its first reason stays) and is audited
// as a platform row with already_disabled.
func (s *Service) DisableUser(ctx context.Context, a *Admin, meta audit.Meta, id uuid.UUID, reason string) (*UserDetail, error) {
	reason, err := checkReason(reason, true)
	if err != nil {
		return nil, err
	}
	if id == a.UserID {
		return nil, ErrDisableSelf
	}
	var d *UserDetail
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		now := s.now()
		changed, err := s.Store.DisableUser(ctx, tx, id, now, reason)
		if errors.Is(err, postgres.ErrNotFound) {
			return errNotFound
		}
		if err != nil {
			return fmt.Errorf("disable user: %w", err)
		}
		if !changed {
			err = record(ctx, tx, a, meta, uuid.Nil, "admin.user_disabled", "user", id.String(),
				map[string]any{"reason": reason, "already_disabled": true})
		} else {
			err = s.revokeAll(ctx, tx, a, meta, id, reason, now)
		}
		if err != nil {
			return err
		}
		d, err = s.userDetail(ctx, tx, id)
		return err
	})
	return d, err
}

// revokeAll ends every session and API key of a user being disabled and
// writes the audit rows of the disable.
func (s *Service) revokeAll(ctx context.Context, tx *sqlx.Tx, a *Admin, meta audit.Meta, id uuid.UUID, reason string, now time.Time) error {
	sessions, err := s.Store.RevokeUserSessions(ctx, tx, id, now)
	if err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	keys, err := s.Store.RevokeUserAPIKeys(ctx, tx, id, now)
	if err != nil {
		return fmt.Errorf("revoke api keys: %w", err)
	}
	total := 0
	for _, n := range keys {
		total += n
	}
	err = record(ctx, tx, a, meta, uuid.Nil, "admin.user_disabled", "user", id.String(),
		map[string]any{"reason": reason, "sessions_revoked": sessions, "api_keys_revoked": total})
	if err != nil {
		return err
	}
	orgs, err := s.userOrgs(ctx, tx, id)
	if err != nil {
		return err
	}
	for orgID := range keys {
		orgs[orgID] = true
	}
	for orgID := range orgs {
		err := record(ctx, tx, a, meta, orgID, "admin.user_disabled", "user", id.String(),
			map[string]any{"reason": reason, "sessions_revoked": sessions, "api_keys_revoked": keys[orgID]})
		if err != nil {
			return err
		}
	}
	return nil
}

// userOrgs returns the organizations the user belongs to.
func (s *Service) userOrgs(ctx context.Context, tx *sqlx.Tx, id uuid.UUID) (map[uuid.UUID]bool, error) {
	ms, err := s.Store.UserMemberships(ctx, tx, id)
	if err != nil {
		return nil, fmt.Errorf("user memberships: %w", err)
	}
	out := make(map[uuid.UUID]bool, len(ms))
	for _, m := range ms {
		out[m.OrgID] = true
	}
	return out, nil
}

// EnableUser is POST /admin/users/{id}/enable: the user may log in again.
// The sessions and API keys the disable revoked stay revoked: the user
// logs in afresh and an organization admin makes new keys. Audited as a
// platform row admin.user_enabled and a row in each of the user's
// organizations (when the user was disabled).
func (s *Service) EnableUser(ctx context.Context, a *Admin, meta audit.Meta, id uuid.UUID) (*UserDetail, error) {
	var d *UserDetail
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		changed, err := s.Store.EnableUser(ctx, tx, id, s.now())
		if errors.Is(err, postgres.ErrNotFound) {
			return errNotFound
		}
		if err != nil {
			return fmt.Errorf("enable user: %w", err)
		}
		if err := s.recordEnable(ctx, tx, a, meta, id, changed); err != nil {
			return err
		}
		d, err = s.userDetail(ctx, tx, id)
		return err
	})
	return d, err
}

func (s *Service) recordEnable(ctx context.Context, tx *sqlx.Tx, a *Admin, meta audit.Meta, id uuid.UUID, changed bool) error {
	details := map[string]any{"was_disabled": changed}
	if err := record(ctx, tx, a, meta, uuid.Nil, "admin.user_enabled", "user", id.String(), details); err != nil {
		return err
	}
	if !changed {
		return nil
	}
	orgs, err := s.userOrgs(ctx, tx, id)
	if err != nil {
		return err
	}
	for orgID := range orgs {
		if err := record(ctx, tx, a, meta, orgID, "admin.user_enabled", "user", id.String(), details); err != nil {
			return err
		}
	}
	return nil
}
