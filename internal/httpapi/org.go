package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/tenant"
)

// orgHandlers serve organizations: members, invitations, API keys and the
// audit log.
type orgHandlers struct {
	orgs *org.Service
	// accounts refuses disabled users on the routes outside a tenant
	// transaction; nil checks nothing (a router without accounts).
	accounts AccountChecker
}

// register adds the organization routes (documented in
// openapi/30-organizations.yaml).
func (h *orgHandlers) register(v1 *gin.RouterGroup, authn *Authenticator) {
	required := authn.Required()
	active := func(c *gin.Context) { c.Next() }
	if h.accounts != nil {
		active = activeAccount(h.accounts)
	}
	// Creating an organization makes the user its owner: an account
	// change, which support access does not make.
	v1.POST("/organizations", required, noSupportAccess(), active, H(h.createOrg))
	v1.GET("/organizations", required, active, H(h.listOrgs))
	// Support access may act in the organization as the user, but never
	// grant anyone a way in (invitations, role changes) that would outlive
	// its 30 minutes, nor touch API keys.
	cur := v1.Group("/organizations/current", required)
	cur.GET("", H(h.currentOrg))
	cur.PATCH("", H(h.updateOrg))
	cur.GET("/members", H(h.listMembers))
	cur.PATCH("/members/:user_id", noSupportAccess(), H(h.updateMember))
	cur.DELETE("/members/:user_id", H(h.removeMember))
	cur.POST("/invitations", noSupportAccess(), H(h.invite))
	cur.GET("/invitations", H(h.listInvitations))
	cur.DELETE("/invitations/:id", H(h.revokeInvitation))
	cur.POST("/invitations/:id/resend", noSupportAccess(), H(h.resendInvitation))
	cur.POST("/api-keys", noSupportAccess(), secret(H(h.createAPIKey))) // the key is shown once, never stored
	cur.GET("/api-keys", H(h.listAPIKeys))
	cur.DELETE("/api-keys/:id", noSupportAccess(), H(h.revokeAPIKey))
	cur.GET("/audit-log", H(h.auditLog))
	cur.GET("/usage", H(h.usage))
}

type orgRequest struct {
	Name string `json:"name"`
}

func (r *orgRequest) Validate() error {
	var f fields
	f.text("name", r.Name, true, 100)
	return f.err()
}

type orgResponse struct {
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toOrg(o *org.Organization) orgResponse {
	return orgResponse{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt.UTC(), UpdatedAt: o.UpdatedAt.UTC()}
}

// list writes the standard list envelope.
func list[T any](c *gin.Context, data []T, next string) {
	if data == nil {
		data = []T{}
	}
	body := gin.H{"data": data}
	if next != "" {
		body["next_cursor"] = next
	}
	c.JSON(http.StatusOK, body)
}

func (h *orgHandlers) createOrg(c *gin.Context) error {
	var req orgRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	o, err := h.orgs.Create(c.Request.Context(), principal(c), req.Name, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, toOrg(o))
	return nil
}

func (h *orgHandlers) listOrgs(c *gin.Context) error {
	ms, err := h.orgs.ListMine(c.Request.Context(), principal(c))
	if err != nil {
		return err
	}
	list(c, toMemberships(ms), "")
	return nil
}

func (h *orgHandlers) currentOrg(c *gin.Context) error {
	o, err := h.orgs.Current(c.Request.Context(), principal(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toOrg(o))
	return nil
}

func (h *orgHandlers) updateOrg(c *gin.Context) error {
	var req orgRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	o, err := h.orgs.Rename(c.Request.Context(), principal(c), req.Name, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toOrg(o))
	return nil
}

type memberResponse struct {
	UserID   uuid.UUID `json:"user_id"`
	Email    string    `json:"email"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

func toMember(m *org.Member) memberResponse {
	return memberResponse{UserID: m.UserID, Email: m.Email, Name: m.Name, Role: m.Role, JoinedAt: m.CreatedAt.UTC()}
}

func (h *orgHandlers) listMembers(c *gin.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	rows, next, err := h.orgs.Members(c.Request.Context(), principal(c), pg)
	if err != nil {
		return err
	}
	out := make([]memberResponse, len(rows))
	for i := range rows {
		out[i] = toMember(&rows[i])
	}
	list(c, out, next)
	return nil
}

type roleRequest struct {
	Role string `json:"role"`
}

func (r *roleRequest) Validate() error {
	if !tenant.ValidRole(r.Role) {
		return apperr.Validation(apperr.FieldError{Field: "role", Message: "must be owner, admin or member"})
	}
	return nil
}

func (h *orgHandlers) updateMember(c *gin.Context) error {
	id, err := pathID(c, "user_id")
	if err != nil {
		return err
	}
	var req roleRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	m, err := h.orgs.SetRole(c.Request.Context(), principal(c), id, req.Role, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toMember(m))
	return nil
}

func (h *orgHandlers) removeMember(c *gin.Context) error {
	id, err := pathID(c, "user_id")
	if err != nil {
		return err
	}
	if err := h.orgs.RemoveMember(c.Request.Context(), principal(c), id, meta(c)); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

type inviteRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func (r *inviteRequest) Validate() error {
	var f fields
	f.required("email", r.Email)
	if !tenant.ValidRole(r.Role) {
		f.add("role", "must be owner, admin or member")
	}
	return f.err()
}

type invitationResponse struct {
	ID        uuid.UUID  `json:"id"`
	Email     string     `json:"email"`
	Role      string     `json:"role"`
	InvitedBy *uuid.UUID `json:"invited_by,omitempty"`
	ExpiresAt time.Time  `json:"expires_at"`
	CreatedAt time.Time  `json:"created_at"`
}

func toInvitation(i *org.Invitation) invitationResponse {
	return invitationResponse{ID: i.ID, Email: i.Email, Role: i.Role, InvitedBy: i.InvitedBy, ExpiresAt: i.ExpiresAt.UTC(), CreatedAt: i.CreatedAt.UTC()}
}

func (h *orgHandlers) invite(c *gin.Context) error {
	var req inviteRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	inv, err := h.orgs.Invite(c.Request.Context(), principal(c), req.Email, req.Role, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, toInvitation(inv))
	return nil
}

func (h *orgHandlers) listInvitations(c *gin.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	rows, next, err := h.orgs.Invitations(c.Request.Context(), principal(c), pg)
	if err != nil {
		return err
	}
	out := make([]invitationResponse, len(rows))
	for i := range rows {
		out[i] = toInvitation(&rows[i])
	}
	list(c, out, next)
	return nil
}

func (h *orgHandlers) revokeInvitation(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	if err := h.orgs.RevokeInvitation(c.Request.Context(), principal(c), id, meta(c)); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (h *orgHandlers) resendInvitation(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	inv, err := h.orgs.ResendInvitation(c.Request.Context(), principal(c), id, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toInvitation(inv))
	return nil
}

type apiKeyRequest struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	ExpiresAt string `json:"expires_at"` // RFC 3339; empty: no expiry

	expiresAt *time.Time
}

func (r *apiKeyRequest) Validate() error {
	var f fields
	f.text("name", r.Name, true, 100)
	if r.Role != tenant.RoleAdmin && r.Role != tenant.RoleMember {
		f.add("role", "must be admin or member")
	}
	if r.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339, r.ExpiresAt)
		if err != nil {
			f.add("expires_at", "must be a time such as 2027-01-31T00:00:00Z")
		} else {
			r.expiresAt = &t
		}
	}
	return f.err()
}

type apiKeyResponse struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Prefix     string     `json:"prefix"`
	CreatedBy  *uuid.UUID `json:"created_by,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Key        string     `json:"key,omitempty"`
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func toAPIKey(k *org.APIKey) apiKeyResponse {
	return apiKeyResponse{ID: k.ID, Name: k.Name, Role: k.Role, Prefix: k.Prefix, CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt.UTC(),
		ExpiresAt: utcPtr(k.ExpiresAt), LastUsedAt: utcPtr(k.LastUsedAt)}
}

func (h *orgHandlers) createAPIKey(c *gin.Context) error {
	var req apiKeyRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	k, err := h.orgs.CreateAPIKey(c.Request.Context(), principal(c), req.Name, req.Role, req.expiresAt, meta(c))
	if err != nil {
		return err
	}
	r := toAPIKey(k.Key)
	r.Key = k.Secret
	c.JSON(http.StatusCreated, r)
	return nil
}

func (h *orgHandlers) listAPIKeys(c *gin.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	rows, next, err := h.orgs.APIKeys(c.Request.Context(), principal(c), pg)
	if err != nil {
		return err
	}
	out := make([]apiKeyResponse, len(rows))
	for i := range rows {
		out[i] = toAPIKey(&rows[i])
	}
	list(c, out, next)
	return nil
}

func (h *orgHandlers) revokeAPIKey(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	if err := h.orgs.RevokeAPIKey(c.Request.Context(), principal(c), id, meta(c)); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

type auditResponse struct {
	ID            uuid.UUID       `json:"id"`
	Action        string          `json:"action"`
	ActorUserID   *uuid.UUID      `json:"actor_user_id,omitempty"`
	ActorAPIKeyID *uuid.UUID      `json:"actor_api_key_id,omitempty"`
	ActingForID   *uuid.UUID      `json:"acting_for_user_id,omitempty"`
	TargetType    string          `json:"target_type"`
	TargetID      string          `json:"target_id"`
	RequestID     string          `json:"request_id"`
	IP            string          `json:"ip"`
	UserAgent     string          `json:"user_agent"`
	Details       json.RawMessage `json:"details"`
	CreatedAt     time.Time       `json:"created_at"`
}

func (h *orgHandlers) auditLog(c *gin.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	var bad fields
	f := auditFilterOf(c, &bad)
	if len(bad) > 0 {
		return apperr.Validation(bad...)
	}
	rows, next, err := h.orgs.AuditLog(c.Request.Context(), principal(c), f, pg)
	if err != nil {
		return err
	}
	out := make([]auditResponse, len(rows))
	for i, e := range rows {
		out[i] = auditResponse{ID: e.ID, Action: e.Action, ActorUserID: e.ActorUserID, ActorAPIKeyID: e.ActorAPIKeyID,
			ActingForID: e.ActingForUserID, TargetType: e.TargetType, TargetID: e.TargetID, RequestID: e.RequestID, IP: e.IP, UserAgent: e.UserAgent, Details: e.Details, CreatedAt: e.CreatedAt.UTC()}
	}
	list(c, out, next)
	return nil
}

type usageResponse struct {
	Plan struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"plan"`
	Metrics []usageMetric `json:"metrics"`
}

// usageMetric is one metric; Limit is null when the plan sets none, Used
// is absent when it is not known (the API rate of an unlimited plan).
type usageMetric struct {
	Metric string `json:"metric"`
	Used   *int64 `json:"used,omitempty"`
	Limit  *int64 `json:"limit"`
}

// usage reports the plan and each metric against its limit. The API rate
// is the budget this very request was counted against: no second Redis call.
func (h *orgHandlers) usage(c *gin.Context) error {
	var apiUsed *int64
	if res, ok := rateResult(c); ok {
		n := res.Used()
		apiUsed = &n
	}
	pl, us, err := h.orgs.Usage(c.Request.Context(), principal(c), apiUsed)
	if err != nil {
		return err
	}
	var out usageResponse
	out.Plan.ID, out.Plan.Name = pl.ID, pl.Name
	out.Metrics = toUsageMetrics(us, apiUsed != nil)
	c.JSON(http.StatusOK, out)
	return nil
}

// toUsageMetrics shapes usage for the API (GET /organizations/current/usage
// and GET /billing); apiKnown says whether the API rate's use was counted.
func toUsageMetrics(us []plan.Usage, apiKnown bool) []usageMetric {
	out := make([]usageMetric, 0, len(us))
	for _, u := range us {
		m := usageMetric{Metric: string(u.Metric)}
		if u.Metric != plan.APIRequestsPerMinute || apiKnown {
			used := u.Used
			m.Used = &used
		}
		if u.Limit != plan.Unlimited {
			limit := u.Limit
			m.Limit = &limit
		}
		out = append(out, m)
	}
	return out
}
