package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/auth"
)

// registerUsers adds the user and support-access routes (documented in
// openapi/61-admin-users.yaml).
func (h *adminHandlers) registerUsers(g *gin.RouterGroup) {
	g.GET("/users", H(h.listUsers))
	g.GET("/users/:id", H(h.getUser))
	g.POST("/users/:id/disable", H(h.disableUser))
	g.POST("/users/:id/enable", H(h.enableUser))
	// The answer holds a token, which an Idempotency-Key never stores.
	g.POST("/users/:id/impersonate", secret(H(h.impersonate)))
}

type adminUserResponse struct {
	ID               uuid.UUID  `json:"id"`
	Email            string     `json:"email"`
	Name             string     `json:"name"`
	CreatedAt        time.Time  `json:"created_at"`
	EmailVerified    bool       `json:"email_verified"`
	TwoFactorEnabled bool       `json:"two_factor_enabled"`
	PlatformAdmin    bool       `json:"platform_admin"`
	DisabledAt       *time.Time `json:"disabled_at"`
	LastLoginAt      *time.Time `json:"last_login_at"`
	Organizations    int        `json:"organizations"`
}

type adminMembershipResponse struct {
	OrganizationID uuid.UUID `json:"organization_id"`
	Name           string    `json:"name"`
	Role           string    `json:"role"`
	Suspended      bool      `json:"suspended"`
	JoinedAt       time.Time `json:"joined_at"`
}

type adminSessionResponse struct {
	ID                   uuid.UUID  `json:"id"`
	OpenedAt             time.Time  `json:"opened_at"`
	LastRefreshedAt      time.Time  `json:"last_refreshed_at"`
	ExpiresAt            time.Time  `json:"expires_at"`
	SecondFactor         *string    `json:"second_factor"`
	ActiveOrganizationID *uuid.UUID `json:"active_organization_id"`
}

type adminUserDetailResponse struct {
	adminUserResponse
	DisabledReason *string                   `json:"disabled_reason"`
	Memberships    []adminMembershipResponse `json:"memberships"`
	Sessions       []adminSessionResponse    `json:"sessions"`
}

func toAdminUser(u *admin.UserSummary) adminUserResponse {
	return adminUserResponse{ID: u.ID, Email: u.Email, Name: u.Name, CreatedAt: u.CreatedAt.UTC(), EmailVerified: u.EmailVerified,
		TwoFactorEnabled: u.TwoFactorEnabled, PlatformAdmin: u.PlatformAdmin, DisabledAt: utcPtr(u.DisabledAt),
		LastLoginAt: utcPtr(u.LastLoginAt), Organizations: u.Organizations}
}

func toAdminSession(s *admin.UserSession) adminSessionResponse {
	out := adminSessionResponse{ID: s.FamilyID, OpenedAt: s.OpenedAt.UTC(), LastRefreshedAt: s.LastRefreshedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC()}
	if s.SecondFactor != "" {
		f := s.SecondFactor
		out.SecondFactor = &f
	}
	if s.ActiveOrgID != uuid.Nil {
		id := s.ActiveOrgID
		out.ActiveOrganizationID = &id
	}
	return out
}

func toAdminUserDetail(d *admin.UserDetail) adminUserDetailResponse {
	out := adminUserDetailResponse{adminUserResponse: toAdminUser(&d.UserSummary),
		Memberships: make([]adminMembershipResponse, len(d.Memberships)), Sessions: make([]adminSessionResponse, len(d.Sessions))}
	if d.DisabledAt != nil {
		r := d.DisabledReason
		out.DisabledReason = &r
	}
	for i, m := range d.Memberships {
		out.Memberships[i] = adminMembershipResponse{OrganizationID: m.OrgID, Name: m.OrgName, Role: m.Role, Suspended: m.Suspended, JoinedAt: m.JoinedAt.UTC()}
	}
	for i := range d.Sessions {
		out.Sessions[i] = toAdminSession(&d.Sessions[i])
	}
	return out
}

func (h *adminHandlers) listUsers(c *gin.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	rows, next, err := h.admin.ListUsers(c.Request.Context(), caller(c), meta(c), c.Query("q"), pg)
	if err != nil {
		return err
	}
	out := make([]adminUserResponse, len(rows))
	for i := range rows {
		out[i] = toAdminUser(&rows[i])
	}
	list(c, out, next)
	return nil
}

func (h *adminHandlers) getUser(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	d, err := h.admin.User(c.Request.Context(), caller(c), meta(c), id)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toAdminUserDetail(d))
	return nil
}

// reasonRequest is the body of disable and impersonate; the admin package
// checks the reason itself (required, 1..500 characters, one line).
type reasonRequest struct {
	Reason string `json:"reason"`
}

func (h *adminHandlers) disableUser(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var req reasonRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	d, err := h.admin.DisableUser(c.Request.Context(), caller(c), meta(c), id, req.Reason)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toAdminUserDetail(d))
	return nil
}

func (h *adminHandlers) enableUser(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	d, err := h.admin.EnableUser(c.Request.Context(), caller(c), meta(c), id)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toAdminUserDetail(d))
	return nil
}

type impersonateRequest struct {
	Reason         string  `json:"reason"`
	OrganizationID *string `json:"organization_id"`
}

// organization returns the organization asked for, uuid.Nil for none.
func (r *impersonateRequest) organization() (uuid.UUID, error) {
	if r.OrganizationID == nil {
		return uuid.Nil, nil
	}
	id, err := uuid.Parse(*r.OrganizationID)
	if err != nil {
		return uuid.Nil, apperr.Validation(apperr.FieldError{Field: "organization_id", Message: "must be a UUID"})
	}
	return id, nil
}

type supportAccessResponse struct {
	AccessToken    string     `json:"access_token"`
	TokenType      string     `json:"token_type"`
	ExpiresIn      int        `json:"expires_in"`
	ExpiresAt      time.Time  `json:"expires_at"`
	UserID         uuid.UUID  `json:"user_id"`
	OrganizationID *uuid.UUID `json:"organization_id"`
	Role           *string    `json:"role"`
	ActingAdminID  uuid.UUID  `json:"acting_admin_id"`
}

func (h *adminHandlers) impersonate(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var req impersonateRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	orgID, err := req.organization()
	if err != nil {
		return err
	}
	sa, err := h.admin.Impersonate(c.Request.Context(), caller(c), meta(c), id, orgID, req.Reason)
	if err != nil {
		return err
	}
	out := supportAccessResponse{AccessToken: sa.AccessToken, TokenType: "Bearer", ExpiresIn: int(auth.SupportAccessTTL.Seconds()),
		ExpiresAt: sa.ExpiresAt.UTC(), UserID: sa.UserID, ActingAdminID: sa.AdminID}
	if sa.OrgID != uuid.Nil {
		org, role := sa.OrgID, sa.Role
		out.OrganizationID, out.Role = &org, &role
	}
	c.JSON(http.StatusOK, out)
	return nil
}
