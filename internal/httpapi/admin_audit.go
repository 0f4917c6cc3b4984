package httpapi

import (
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
)

// registerAudit adds GET /admin/audit-log (63-admin-audit.yaml).
func (h *adminHandlers) registerAudit(g *gin.RouterGroup) {
	g.GET("/audit-log", H(h.auditLog))
}

// adminAuditResponse is an organization's audit entry as
// /organizations/current/audit-log shows it, plus its organization: null
// for a platform row (an admin's action on no organization).
type adminAuditResponse struct {
	OrganizationID *uuid.UUID `json:"organization_id"`
	auditResponse
}

func toAdminAudit(e admin.AuditEntry) adminAuditResponse {
	r := adminAuditResponse{auditResponse: auditResponse{ID: e.ID, Action: e.Action, ActorUserID: e.ActorUserID,
		ActorAPIKeyID: e.ActorAPIKeyID, ActingForID: e.ActingForUserID, TargetType: e.TargetType, TargetID: e.TargetID,
		RequestID: e.RequestID, IP: e.IP, UserAgent: e.UserAgent, Details: e.Details, CreatedAt: e.CreatedAt.UTC()}}
	if e.OrgID != uuid.Nil {
		org := e.OrgID
		r.OrganizationID = &org
	}
	return r
}

func (h *adminHandlers) auditLog(c *gin.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	f, err := auditFilter(c)
	if err != nil {
		return err
	}
	rows, next, err := h.admin.AuditLog(c.Request.Context(), caller(c), f, pg, meta(c))
	if err != nil {
		return err
	}
	out := make([]adminAuditResponse, len(rows))
	for i, e := range rows {
		out[i] = toAdminAudit(e)
	}
	list(c, out, next)
	return nil
}

// auditFilter reads the cross-tenant audit log's query parameters: an
// organization's (auditFilterOf) and organization_id, naming every bad one.
func auditFilter(c *gin.Context) (admin.AuditFilter, error) {
	var bad fields
	f := admin.AuditFilter{OrgID: auditUUIDParam(c, "organization_id", &bad), Filter: auditFilterOf(c, &bad)}
	if len(bad) > 0 {
		return f, apperr.Validation(bad...)
	}
	return f, nil
}

// auditFilterOf reads the filters both audit logs take (actor_user_id,
// action, since, until), adding a bad one to bad.
func auditFilterOf(c *gin.Context, bad *fields) audit.Filter {
	return audit.Filter{ActorUserID: auditUUIDParam(c, "actor_user_id", bad), Action: c.Query("action"),
		Since: auditTimeParam(c, "since", bad), Until: auditTimeParam(c, "until", bad)}
}

func auditUUIDParam(c *gin.Context, name string, bad *fields) *uuid.UUID {
	v := c.Query(name)
	if v == "" {
		return nil
	}
	id, err := uuid.Parse(v)
	if err != nil {
		bad.add(name, "must be a UUID")
		return nil
	}
	return &id
}

func auditTimeParam(c *gin.Context, name string, bad *fields) *time.Time {
	v := c.Query(name)
	if v == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		bad.add(name, "must be an RFC 3339 time (2026-11-27T09:00:00Z)")
		return nil
	}
	return &t
}
