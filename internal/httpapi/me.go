package httpapi

import (
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/auth"
)

type membershipResponse struct {
	OrganizationID   uuid.UUID `json:"organization_id"`
	OrganizationName string    `json:"organization_name"`
	Role             string    `json:"role"`
	JoinedAt         time.Time `json:"joined_at"`
}

type meResponse struct {
	userResponse
	Memberships []membershipResponse `json:"memberships"`
	// PlatformAdmin lets a client show the admin area's link; the admin
	// gate still decides on every /admin call (2FA, a TOTP login).
	PlatformAdmin bool               `json:"platform_admin"`
	SupportAccess *supportAccessInfo `json:"support_access,omitempty"`
}

// supportAccessInfo tells a client that a platform admin is acting as the
// user, so it can say so on screen.
type supportAccessInfo struct {
	AdminUserID uuid.UUID `json:"admin_user_id"`
}

func toMemberships(ms []auth.Membership) []membershipResponse {
	out := make([]membershipResponse, len(ms))
	for i, m := range ms {
		out[i] = membershipResponse{OrganizationID: m.OrgID, OrganizationName: m.OrgName, Role: m.Role, JoinedAt: m.JoinedAt.UTC()}
	}
	return out
}

func toMe(p *auth.Profile) meResponse {
	return meResponse{userResponse: toUser(p.User), Memberships: toMemberships(p.Memberships), PlatformAdmin: p.User.IsPlatformAdmin}
}

func (h *authHandlers) me(c *gin.Context) error {
	p, err := h.auth.Me(c.Request.Context(), principal(c))
	if err != nil {
		return err
	}
	out := toMe(p)
	if pr := principal(c); pr.SupportAccess() {
		out.SupportAccess = &supportAccessInfo{AdminUserID: pr.ActorID}
	}
	c.JSON(http.StatusOK, out)
	return nil
}

type updateMeRequest struct {
	Name            *string `json:"name"`
	Email           *string `json:"email"`
	CurrentPassword *string `json:"current_password"`
	NewPassword     *string `json:"new_password"`
}

func (r *updateMeRequest) Validate() error {
	var f fields
	if r.Name != nil {
		f.text("name", *r.Name, true, 100)
	}
	if r.Email != nil && len(*r.Email) > 254 {
		f.add("email", "must be at most 254 characters")
	}
	if r.CurrentPassword != nil && utf8.RuneCountInString(*r.CurrentPassword) > auth.MaxPasswordLen {
		f.add("current_password", "must be at most 128 characters")
	}
	if r.Name == nil && r.Email == nil && r.NewPassword == nil {
		return apperr.Validation(apperr.FieldError{Field: "name", Message: "send at least one of name, email, new_password"})
	}
	return f.err()
}

func (h *authHandlers) updateMe(c *gin.Context) error {
	var req updateMeRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	p, err := h.auth.UpdateMe(c.Request.Context(), principal(c), auth.UpdateMeInput{Name: req.Name, Email: req.Email,
		CurrentPassword: req.CurrentPassword, NewPassword: req.NewPassword}, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toMe(p))
	return nil
}
