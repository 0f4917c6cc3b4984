package admindb

import (
	"context"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/tenant"
)

// ListAudit implements admin.AuditStore. It reads past Row Level Security
// (the admin role), so platform rows (org_id NULL) come too unless an
// organization is asked for. The page is a range of audit_log_created_idx,
// or of audit_log_org_idx for one organization.
func (Store) ListAudit(ctx context.Context, tx sqlx.QueryerContext, f admin.AuditFilter, after *tenant.Cursor, limit int) ([]admin.AuditEntry, error) {
	base := `SELECT id, org_id, actor_user_id, actor_api_key_id, acting_for_user_id, action, target_type,
		target_id, request_id, ip, user_agent, details, created_at FROM audit_log WHERE true`
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.OrgID != nil {
		base += ` AND org_id = ` + arg(*f.OrgID)
	}
	base += f.Filter.Where(arg)
	q, all := tenant.KeysetBy(base, args, "created_at", "id", true, after, limit)
	rows, err := tx.QueryxContext(ctx, q, all...)
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	defer rows.Close()
	var out []admin.AuditEntry
	for rows.Next() {
		var (
			e       admin.AuditEntry
			org     uuid.NullUUID
			details []byte
		)
		if err := rows.Scan(&e.ID, &org, &e.ActorUserID, &e.ActorAPIKeyID, &e.ActingForUserID, &e.Action, &e.TargetType,
			&e.TargetID, &e.RequestID, &e.IP, &e.UserAgent, &details, &e.CreatedAt); err != nil {
			return nil, fmt.Errorf("scan audit entry: %w", err)
		}
		e.OrgID, e.Details = org.UUID, details
		out = append(out, e)
	}
	return out, rows.Err()
}
