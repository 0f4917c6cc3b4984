// Package resource runs resources, the tenant-owned records a product built
// on Keel is about: create, read, list (sorted, searched, filtered, keyset
// paged), update with optimistic concurrency, soft delete, restore within
// RestoreWindow, and the purge of what stayed deleted longer. Every method
// that acts for a caller runs in one tenant.InOrg transaction, so Row Level
// Security backs every filter, the caller's role is checked in the same
// snapshot as the work, and the audit entry and the plan's usage counter
// change with the row or not at all.
//
// It is the worked example of docs/adding-a-capability.md.
package resource

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// The statuses of a resource.
const (
	StatusDraft    = "draft"
	StatusActive   = "active"
	StatusArchived = "archived"
)

// Statuses lists every status.
var Statuses = []string{StatusDraft, StatusActive, StatusArchived}

// Limits of a resource's fields (the migration's CHECKs agree).
const (
	MaxName        = 200      // characters, after trimming
	MaxDescription = 5000     // characters
	MaxAttributes  = 16 << 10 // bytes of compact JSON
	MaxQuery       = MaxName  // characters of a search
	RestoreWindow  = 30 * 24 * time.Hour
)

// Resource is one resource. Attributes is a JSON object.
type Resource struct {
	ID          uuid.UUID
	OrgID       uuid.UUID
	Name        string
	Description string
	Status      string
	Attributes  json.RawMessage
	// Version starts at 1 and grows by one with every update; clients send
	// it back (If-Match) to update.
	Version           int64
	CreatedByUserID   *uuid.UUID
	CreatedByAPIKeyID *uuid.UUID
	CreatedAt         time.Time
	UpdatedAt         time.Time
	// DeletedAt is set while the resource is soft-deleted.
	DeletedAt *time.Time
}

// Input is what a client sends to create a resource; empty Status means
// active, nil Attributes an empty object.
type Input struct {
	Name        string
	Description string
	Status      string
	Attributes  json.RawMessage
}

// Patch is a partial update: nil fields stay as they are. A Description
// pointing at "" clears it.
type Patch struct {
	Name        *string
	Description *string
	Status      *string
	Attributes  json.RawMessage
}

// The sorts a list offers, each ascending or (with a leading "-")
// descending; DefaultSort is newest first.
var (
	SortFields  = []string{"created_at", "name", "updated_at"}
	DefaultSort = tenant.Sort{Field: "created_at", Desc: true}
)

// Filter selects the resources of a list and their order. Status empty
// means every status; Q is a case-insensitive substring of the name.
type Filter struct {
	Sort   tenant.Sort
	Status string
	Q      string
}

// Store keeps resources. Every method takes the transaction it runs in,
// whose tenant must be orgID; live means not soft-deleted.
type Store interface {
	// Create inserts r and fills the fields the database sets.
	Create(ctx context.Context, tx sqlx.ExtContext, r *Resource) error
	// CreateStmt is Create's statement, for a one-message write
	// (tenant.WriteOnce); ScanCreated reads its result set into r as
	// Create does.
	CreateStmt(r *Resource) postgres.Stmt
	ScanCreated(rows *sqlx.Rows, r *Resource) error
	// Get returns one resource, deleted or not; lock takes its row lock
	// until tx ends. ErrNotFound when there is none.
	Get(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID, lock bool) (*Resource, error)
	// List returns up to limit live resources matching f after the cursor,
	// in f.Sort's order (ties broken by ID).
	List(ctx context.Context, q tenant.Querier, orgID uuid.UUID, f Filter, after *tenant.Cursor, limit int) ([]Resource, error)
	// Update writes r's name, description, status, attributes, version and
	// updated_at. ErrNotFound when it is gone.
	Update(ctx context.Context, tx sqlx.ExtContext, r *Resource) error
	// SetDeleted sets (at non-nil) or clears the deleted_at of a resource
	// and returns it. ErrNotFound when there is none.
	SetDeleted(ctx context.Context, tx sqlx.ExtContext, orgID, id uuid.UUID, at *time.Time) (*Resource, error)
	// Purgeable locks and returns up to limit resources deleted before
	// `before`, skipping rows another transaction holds (a restore).
	Purgeable(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, before time.Time, limit int) ([]uuid.UUID, error)
	// Purge deletes the resources ids for good.
	Purge(ctx context.Context, tx sqlx.ExecerContext, orgID uuid.UUID, ids []uuid.UUID) (int64, error)
	// OrgIDs returns up to limit organization IDs after `after`, in order:
	// the purge visits every organization, each in its own tenant.
	OrgIDs(ctx context.Context, db sqlx.QueryerContext, after uuid.UUID, limit int) ([]uuid.UUID, error)
}

// ErrNotFound is what the Store returns for a missing row.
var ErrNotFound = postgres.ErrNotFound

// Limiter counts resources against the organization's plan: Reserve in the
// transaction that adds one (create, restore), Release in the one that
// takes one away (delete). *plan.Limiter implements it.
type Limiter interface {
	Reserve(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m plan.Metric, delta int64) error
	Release(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m plan.Metric, delta int64) error
}

var _ Limiter = (*plan.Limiter)(nil)

// MessageLimiter is a Limiter that can also reserve inside a one-message
// write (tenant.WriteOnce): *plan.Limiter. A Service whose Limits is not
// one writes through transactions only.
type MessageLimiter interface {
	Limiter
	ReserveStmts(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, m plan.Metric, delta int64) ([]postgres.Stmt, bool, error)
	Forget(orgID uuid.UUID)
}

var _ MessageLimiter = (*plan.Limiter)(nil)

// FileRemover removes the files of resources about to be purged, in the
// purge's transaction (tx has orgID as its tenant), so a resource never
// goes while its files stay. The files capability implements it.
type FileRemover interface {
	RemoveForResources(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, resourceIDs []uuid.UUID) error
}
