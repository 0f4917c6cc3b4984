// Package audit records security-sensitive actions in an organization's
// audit log and lists them. Every capability writes through Record, inside
// the transaction of the change it records, so an action and its entry
// commit or roll back together.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// Meta is what a request says about where it came from.
type Meta struct {
	IP        string
	UserAgent string
}

// Entry is one audit record. Exactly one of ActorUserID and ActorAPIKeyID is
// normally set; ActingForUserID is the user a platform admin acts for during
// support access, so the log says both who did it and on whose behalf.
type Entry struct {
	ID              uuid.UUID
	OrgID           uuid.UUID
	ActorUserID     *uuid.UUID
	ActorAPIKeyID   *uuid.UUID
	ActingForUserID *uuid.UUID
	Action          string // "member.role_changed": <object>.<past tense>
	TargetType      string
	TargetID        string
	RequestID       string // from ctx when empty
	IP              string
	UserAgent       string
	Details         json.RawMessage // a JSON object; {} when empty
	CreatedAt       time.Time
}

// Limits on client-supplied text. They are in characters, and text is cut on
// a character boundary, so a stored value is always valid UTF-8.
const (
	maxUserAgent = 512
	maxIP        = 64
	maxText      = 256
	maxRequestID = 128
)

// By returns an entry for action taken by p in its organization, from meta.
// Under support access the platform admin is the actor and the user the
// one acted for, so the entry names both.
func By(p *tenant.Principal, meta Meta, action, targetType, targetID string) Entry {
	e := Entry{OrgID: p.OrgID, Action: action, TargetType: targetType, TargetID: targetID, IP: meta.IP, UserAgent: meta.UserAgent}
	if p.SupportAccess() {
		admin, user := p.ActorID, p.UserID
		e.ActorUserID, e.ActingForUserID = &admin, &user
	} else if p.IsUser() {
		id := p.UserID
		e.ActorUserID = &id
	} else if p.APIKeyID != uuid.Nil {
		id := p.APIKeyID
		e.ActorAPIKeyID = &id
	}
	return e
}

// WithDetails returns e with details marshalled as its JSON details; a value
// that does not marshal to an object is stored under "value".
func (e Entry) WithDetails(details any) Entry {
	if details == nil {
		return e
	}
	b, err := json.Marshal(details)
	if err != nil || len(b) == 0 || b[0] != '{' {
		b, _ = json.Marshal(map[string]string{"value": fmt.Sprint(details)})
	}
	e.Details = b
	return e
}

// Record inserts e inside tx, which must have e.OrgID as its tenant (the
// audit log is under Row Level Security). An entry with OrgID uuid.Nil is a
// platform admin's action on no organization; only the admin role, which
// bypasses Row Level Security, can write or read it. Text a client supplied (user agent,
// names in details) is cleaned to valid UTF-8 and cut to its limit, so an
// audit write never fails, and never rolls back the change it records, on
// what a client sent.
func Record(ctx context.Context, tx sqlx.ExecerContext, e Entry) error {
	if e.ID == uuid.Nil {
		e.ID = postgres.NewID()
	}
	if e.RequestID == "" {
		e.RequestID = logging.RequestID(ctx)
	}
	details := []byte(`{}`)
	if len(e.Details) > 0 {
		details = []byte(Clean(string(e.Details), 1<<16))
		if !json.Valid(details) {
			details, _ = json.Marshal(map[string]string{"invalid": Clean(string(e.Details), maxText)})
		}
	}
	const q = `INSERT INTO audit_log (id, org_id, actor_user_id, actor_api_key_id, acting_for_user_id, action,
		target_type, target_id, request_id, ip, user_agent, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	var org *uuid.UUID
	if e.OrgID != uuid.Nil {
		org = &e.OrgID
	}
	// details as text, not bytes: postgres.Prepared writes a string as a
	// literal the jsonb column takes, and bytes only as bytea.
	_, err := tx.ExecContext(ctx, q, e.ID, org, e.ActorUserID, e.ActorAPIKeyID, e.ActingForUserID,
		Clean(e.Action, maxText), Clean(e.TargetType, maxText), Clean(e.TargetID, maxText), Clean(e.RequestID, maxRequestID),
		Clean(e.IP, maxIP), Clean(e.UserAgent, maxUserAgent), string(details))
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// Clean returns s as valid UTF-8 without NUL bytes (PostgreSQL text refuses
// both), cut to at most max characters on a character boundary.
func Clean(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i]
		}
		n++
	}
	return s
}

// Filter narrows an organization's audit log. Nil and empty fields match
// everything; the fields combine.
type Filter struct {
	ActorUserID *uuid.UUID
	// Action matches exactly, or as a prefix when it ends with "."
	// ("user." is every account event).
	Action string
	// Since is inclusive, Until exclusive.
	Since, Until *time.Time
}

// likeEscaper makes an action prefix match literally inside LIKE.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// Validate refuses an action over 256 characters and an Until not after
// Since, naming the field (400 validation_failed).
func (f Filter) Validate() error {
	var bad []apperr.FieldError
	if utf8.RuneCountInString(f.Action) > 256 {
		bad = append(bad, apperr.FieldError{Field: "action", Message: "must be at most 256 characters"})
	}
	if f.Since != nil && f.Until != nil && !f.Since.Before(*f.Until) {
		bad = append(bad, apperr.FieldError{Field: "until", Message: "must be after since"})
	}
	if len(bad) > 0 {
		return apperr.Validation(bad...)
	}
	return nil
}

// Where is f as SQL conditions on audit_log's columns, each starting with
// " AND "; arg binds a value and returns its placeholder. The organization's
// log and the platform admin's cross-tenant log filter alike through it.
func (f Filter) Where(arg func(any) string) string {
	var w string
	if f.ActorUserID != nil {
		w += ` AND actor_user_id = ` + arg(*f.ActorUserID)
	}
	switch {
	case f.Action == "":
	case strings.HasSuffix(f.Action, "."):
		w += ` AND action LIKE ` + arg(likeEscaper.Replace(f.Action)+"%")
	default:
		w += ` AND action = ` + arg(f.Action)
	}
	if f.Since != nil {
		w += ` AND created_at >= ` + arg(*f.Since)
	}
	if f.Until != nil {
		w += ` AND created_at < ` + arg(*f.Until)
	}
	return w
}

// List returns an organization's audit log matching f, newest first, after
// the cursor; tx must have orgID as its tenant. The page is a range of
// audit_log_org_idx (org_id, created_at, id); the filters are checked on
// the rows it reads.
func List(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, f Filter, after *tenant.Cursor, limit int) ([]Entry, error) {
	base := `SELECT id, org_id, actor_user_id, actor_api_key_id, acting_for_user_id, action, target_type,
		target_id, request_id, ip, user_agent, details, created_at FROM audit_log WHERE org_id = $1`
	args := []any{orgID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	base += f.Where(arg)
	q, args := tenant.KeysetBy(base, args, "created_at", "id", true, after, limit)
	rows, err := tx.QueryxContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var details []byte
		if err := rows.Scan(&e.ID, &e.OrgID, &e.ActorUserID, &e.ActorAPIKeyID, &e.ActingForUserID, &e.Action, &e.TargetType,
			&e.TargetID, &e.RequestID, &e.IP, &e.UserAgent, &details, &e.CreatedAt); err != nil {
			return nil, err
		}
		e.Details = details
		out = append(out, e)
	}
	return out, rows.Err()
}
