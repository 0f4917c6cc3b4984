package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/tenant"
)

// AuditStore lists every organization's audit log.
type AuditStore interface {
	// ListAudit returns one page of audit entries matching f, newest first
	// (created_at, id), after the cursor: every organization's entries and
	// the platform rows (org_id NULL), which only the admin role can read.
	ListAudit(ctx context.Context, tx sqlx.QueryerContext, f AuditFilter, after *tenant.Cursor, limit int) ([]AuditEntry, error)
}

// AuditEntry is one audit row; OrgID is uuid.Nil for a platform row (an
// admin's action on no organization).
type AuditEntry = audit.Entry

// AuditFilter narrows the cross-tenant audit log. Nil and empty fields
// match everything.
// Its action, actor and time fields are an organization log's (audit.Filter;
// "admin." is every admin action).
type AuditFilter struct {
	OrgID *uuid.UUID
	audit.Filter
}

// AuditLog lists the audit log across every organization, with the
// platform rows, newest first, and audits the read as a platform row
// (admin.audit_log_read with the filters). The read's own row is written
// in the same transaction, after the page is read: it shows from the next
// read on.
func (s *Service) AuditLog(ctx context.Context, a *Admin, f AuditFilter, pg tenant.Page, meta audit.Meta) ([]AuditEntry, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	return auditedList(ctx, s, pg, func(tx *sqlx.Tx, after *tenant.Cursor, limit int) ([]AuditEntry, error) {
		rows, err := s.Store.ListAudit(ctx, tx, f, after, limit)
		if err != nil {
			return nil, fmt.Errorf("list audit log: %w", err)
		}
		return rows, record(ctx, tx, a, meta, uuid.Nil, "admin.audit_log_read", "", "", auditFilterDetails(f, pg))
	}, func(e *AuditEntry) (time.Time, uuid.UUID) { return e.CreatedAt, e.ID })
}

// auditedList reads one newest-first keyset page on the admin role: fetch
// gets the cursor and limit+1 (to learn whether another page exists) and
// writes the read's audit row in the same transaction; key gives a row's
// (created_at, id) for the next cursor.
func auditedList[T any](ctx context.Context, s *Service, pg tenant.Page,
	fetch func(tx *sqlx.Tx, after *tenant.Cursor, limit int) ([]T, error), key func(*T) (time.Time, uuid.UUID)) ([]T, string, error) {
	after, err := tenant.ParseCursor(pg.Cursor)
	if err != nil {
		return nil, "", err
	}
	var rows []T
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		rows, err = fetch(tx, after, pg.Limit+1)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	rows, next := newestPage(rows, pg.Limit, key)
	return rows, next, nil
}

// newestPage cuts the extra row a keyset fetch was asked for (limit+1,
// to learn whether another page exists) and makes the cursor that
// continues after the last row kept, as tenant.List does for a tenant.
func newestPage[T any](rows []T, limit int, key func(*T) (time.Time, uuid.UUID)) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, tenant.EncodeCursor(key(&rows[len(rows)-1]))
}

func auditFilterDetails(f AuditFilter, pg tenant.Page) map[string]any {
	d := map[string]any{"limit": pg.Limit}
	if f.OrgID != nil {
		d["organization_id"] = f.OrgID.String()
	}
	if f.ActorUserID != nil {
		d["actor_user_id"] = f.ActorUserID.String()
	}
	if f.Action != "" {
		d["action"] = f.Action
	}
	if f.Since != nil {
		d["since"] = f.Since.UTC().Format(time.RFC3339Nano)
	}
	if f.Until != nil {
		d["until"] = f.Until.UTC().Format(time.RFC3339Nano)
	}
	if pg.Cursor != "" {
		d["cursor"] = pg.Cursor
	}
	return d
}
