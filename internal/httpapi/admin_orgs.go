package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/plan"
)

// registerOrgs adds the organization routes (62-admin-orgs.yaml).
func (h *adminHandlers) registerOrgs(g *gin.RouterGroup) {
	g.GET("/organizations", H(h.listOrgs))
	g.GET("/organizations/:id", H(h.getOrg))
	g.POST("/organizations/:id/suspend", H(h.suspension(h.admin.SuspendOrg, true)))
	g.POST("/organizations/:id/unsuspend", H(h.suspension(h.admin.UnsuspendOrg, false)))
}

type orgPlanResponse struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type adminOrgResponse struct {
	ID          uuid.UUID       `json:"id"`
	Name        string          `json:"name"`
	CreatedAt   time.Time       `json:"created_at"`
	SuspendedAt *time.Time      `json:"suspended_at"`
	Plan        orgPlanResponse `json:"plan"`
	Status      string          `json:"status"`
	MemberCount int64           `json:"member_count"`
}

func (h *adminHandlers) listOrgs(c *gin.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	f := admin.OrgFilter{Q: c.Query("q"), Plan: c.Query("plan"), Status: c.Query("status")}
	if f.Suspended, err = orgsBoolParam(c, "suspended"); err != nil {
		return err
	}
	rows, next, err := h.admin.ListOrgs(c.Request.Context(), caller(c), f, pg, meta(c))
	if err != nil {
		return err
	}
	out := make([]adminOrgResponse, len(rows))
	for i, o := range rows {
		out[i] = adminOrgResponse{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt.UTC(), SuspendedAt: utcPtr(o.SuspendedAt),
			Plan: orgPlanResponse(o.Plan), Status: o.Status, MemberCount: o.Members}
	}
	list(c, out, next)
	return nil
}

// orgsBoolParam reads an optional true/false query parameter.
func orgsBoolParam(c *gin.Context, name string) (*bool, error) {
	v, ok := c.GetQuery(name)
	if !ok || v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil || (v != "true" && v != "false") {
		return nil, apperr.Validation(apperr.FieldError{Field: name, Message: "must be true or false"})
	}
	return &b, nil
}

type adminMemberResponse struct {
	UserID   uuid.UUID `json:"user_id"`
	Email    string    `json:"email"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

type orgSubscriptionResponse struct {
	PlanID               *string    `json:"plan_id"`
	Status               string     `json:"status"`
	Interval             *string    `json:"interval"`
	TrialEnd             *time.Time `json:"trial_end"`
	CurrentPeriodEnd     *time.Time `json:"current_period_end"`
	CancelAtPeriodEnd    bool       `json:"cancel_at_period_end"`
	PastDueSince         *time.Time `json:"past_due_since"`
	GraceUntil           *time.Time `json:"grace_until"`
	StripeCustomerID     *string    `json:"stripe_customer_id"`
	StripeSubscriptionID *string    `json:"stripe_subscription_id"`
	Quantity             *int64     `json:"quantity"`
}

// adminUsageResponse is one metric; Limit is null when the plan sets none.
type adminUsageResponse struct {
	Metric string `json:"metric"`
	Used   int64  `json:"used"`
	Limit  *int64 `json:"limit"`
}

type adminOrgDetailResponse struct {
	ID              uuid.UUID               `json:"id"`
	Name            string                  `json:"name"`
	CreatedAt       time.Time               `json:"created_at"`
	SuspendedAt     *time.Time              `json:"suspended_at"`
	SuspendedReason string                  `json:"suspended_reason"`
	Plan            orgPlanResponse         `json:"plan"`
	Subscription    orgSubscriptionResponse `json:"subscription"`
	MemberCount     int64                   `json:"member_count"`
	Members         []adminMemberResponse   `json:"members"`
	Usage           []adminUsageResponse    `json:"usage"`
	RecentAudit     []adminAuditResponse    `json:"recent_audit"`
}

func toAdminOrgDetail(d *admin.OrgDetail) adminOrgDetailResponse {
	s := d.Subscription
	out := adminOrgDetailResponse{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt.UTC(), SuspendedAt: utcPtr(d.SuspendedAt),
		SuspendedReason: d.SuspendedReason, Plan: orgPlanResponse(d.Plan), MemberCount: d.MemberCount,
		Subscription: orgSubscriptionResponse{PlanID: s.PlanID, Status: s.Status, Interval: s.Interval, TrialEnd: utcPtr(s.TrialEnd),
			CurrentPeriodEnd: utcPtr(s.CurrentPeriodEnd), CancelAtPeriodEnd: s.CancelAtPeriodEnd, PastDueSince: utcPtr(s.PastDueSince),
			GraceUntil: utcPtr(s.GraceUntil), StripeCustomerID: s.StripeCustomerID, StripeSubscriptionID: s.StripeSubscriptionID, Quantity: s.Quantity},
		Members: make([]adminMemberResponse, len(d.Members)), Usage: make([]adminUsageResponse, len(d.Usage)),
		RecentAudit: make([]adminAuditResponse, len(d.RecentAudit))}
	for i, m := range d.Members {
		out.Members[i] = adminMemberResponse{UserID: m.UserID, Email: m.Email, Name: m.Name, Role: m.Role, JoinedAt: m.JoinedAt.UTC()}
	}
	for i, u := range d.Usage {
		r := adminUsageResponse{Metric: string(u.Metric), Used: u.Used}
		if u.Limit != plan.Unlimited {
			l := u.Limit
			r.Limit = &l
		}
		out.Usage[i] = r
	}
	for i, e := range d.RecentAudit {
		out.RecentAudit[i] = toAdminAudit(e)
	}
	return out
}

func (h *adminHandlers) getOrg(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	d, err := h.admin.Org(c.Request.Context(), caller(c), id, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toAdminOrgDetail(d))
	return nil
}

// suspendRequest is the body of suspend (reason required) and unsuspend
// (optional); the admin service checks the reason.
type suspendRequest struct {
	Reason string `json:"reason"`
}

// suspension serves suspend and unsuspend: change is the admin service's
// method, and bodyRequired says whether the reason (hence a body) must be
// sent; unsuspend takes an empty body.
func (h *adminHandlers) suspension(change suspensionChange, bodyRequired bool) HandlerFunc {
	return func(c *gin.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		var req suspendRequest
		if bodyRequired || c.Request.ContentLength != 0 {
			if err := BindJSON(c, &req); err != nil {
				return err
			}
		}
		d, err := change(c.Request.Context(), caller(c), id, req.Reason, meta(c))
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, toAdminOrgDetail(d))
		return nil
	}
}

// suspensionChange is admin.Service.SuspendOrg or UnsuspendOrg.
type suspensionChange func(ctx context.Context, a *admin.Admin, id uuid.UUID, reason string, m audit.Meta) (*admin.OrgDetail, error)
