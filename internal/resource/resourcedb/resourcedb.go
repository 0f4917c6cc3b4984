// Package resourcedb stores resources. Every statement carries org_id and
// runs in a transaction whose tenant (app.org_id) is that organization, so
// the application filter and Row Level Security agree. Each list sort is
// served by its own partial index over live rows (see
// migrations/00500_resources.sql), and the query names the sort key exactly
// as the index does, so a page is an index range scan at any table size.
package resourcedb

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/resource"
	"github.com/keelhq/keel/internal/tenant"
)

// Store runs the queries; its methods take the transaction (or pool) they
// run in.
type Store struct{}

var _ resource.Store = Store{}

type row struct {
	OrgID             uuid.UUID  `db:"org_id"`
	ID                uuid.UUID  `db:"id"`
	Name              string     `db:"name"`
	Description       string     `db:"description"`
	Status            string     `db:"status"`
	Attributes        []byte     `db:"attributes"`
	Version           int64      `db:"version"`
	CreatedByUserID   *uuid.UUID `db:"created_by_user_id"`
	CreatedByAPIKeyID *uuid.UUID `db:"created_by_api_key_id"`
	CreatedAt         time.Time  `db:"created_at"`
	UpdatedAt         time.Time  `db:"updated_at"`
	DeletedAt         *time.Time `db:"deleted_at"`
}

func (r *row) resource() resource.Resource {
	return resource.Resource{ID: r.ID, OrgID: r.OrgID, Name: r.Name, Description: r.Description, Status: r.Status,
		Attributes: json.RawMessage(r.Attributes), Version: r.Version, CreatedByUserID: r.CreatedByUserID,
		CreatedByAPIKeyID: r.CreatedByAPIKeyID, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, DeletedAt: r.DeletedAt}
}

const cols = `org_id, id, name, description, status, attributes, version, created_by_user_id, created_by_api_key_id,
	created_at, updated_at, deleted_at`

// listCols are cols less what a list of one tenant's live resources knows
// already (org_id, and deleted_at, NULL): each column of each row costs
// the server its output and the API its decoding.
const listCols = `id, name, description, status, attributes, version, created_by_user_id, created_by_api_key_id,
	created_at, updated_at`

// createQuery inserts a resource and returns it as stored.
const createQuery = `INSERT INTO resources (org_id, id, name, description, status, attributes, version,
		created_by_user_id, created_by_api_key_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING ` + cols

// Create inserts r.
func (s Store) Create(ctx context.Context, tx sqlx.ExtContext, r *resource.Resource) error {
	st := s.CreateStmt(r)
	var out row
	if err := sqlx.GetContext(ctx, tx, &out, st.Query, st.Args...); err != nil {
		return postgres.Translate(err)
	}
	*r = out.resource()
	return nil
}

// CreateStmt implements resource.Store.
func (Store) CreateStmt(r *resource.Resource) postgres.Stmt {
	// Attributes as text: postgres.Prepared and messages write a string
	// as a literal the jsonb column takes, and bytes only as bytea.
	return postgres.Stmt{Query: createQuery, Args: []any{r.OrgID, r.ID, r.Name, r.Description, r.Status, string(r.Attributes),
		r.Version, r.CreatedByUserID, r.CreatedByAPIKeyID, r.CreatedAt}}
}

// ScanCreated implements resource.Store.
func (Store) ScanCreated(rows *sqlx.Rows, r *resource.Resource) error {
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return postgres.Translate(err)
		}
		return fmt.Errorf("create: no row returned")
	}
	var out row
	if err := rows.StructScan(&out); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	*r = out.resource()
	return nil
}

// Get returns one resource, deleted or not.
func (Store) Get(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID, lock bool) (*resource.Resource, error) {
	q := `SELECT ` + cols + ` FROM resources WHERE org_id = $1 AND id = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	var r row
	if err := sqlx.GetContext(ctx, tx, &r, q, orgID, id); err != nil {
		return nil, postgres.Translate(err)
	}
	out := r.resource()
	return &out, nil
}

// sortKeys are the SQL sort keys, as the indexes resources_created,
// resources_updated and resources_name have them: names compare byte-wise
// (COLLATE "C"), which is what the name index orders by, and is stable
// whatever the database's locale.
var sortKeys = map[string]string{
	"created_at": `created_at`,
	"updated_at": `updated_at`,
	"name":       `name COLLATE "C"`,
}

// likeEscaper makes a search text match literally inside LIKE.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// List returns up to limit live resources matching f after the cursor.
// Its rows are scanned field by field rather than by sqlx's reflection,
// which was a fifth of the API's CPU on the hot list (docs/benchmarks.md);
// scanRow must follow listCols.
func (Store) List(ctx context.Context, db tenant.Querier, orgID uuid.UUID, f resource.Filter, after *tenant.Cursor, limit int) ([]resource.Resource, error) {
	q, args := listQuery(orgID, f, after, limit)
	rows, err := db.QueryxContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]resource.Resource, 0, min(max(limit, 0), 101))
	for rows.Next() {
		// Scanned in place: a row scanned into its own variable escapes
		// to the heap, one allocation per row more.
		out = append(out, resource.Resource{OrgID: orgID})
		if err := scanRow(rows, &out[len(out)-1]); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// scanRow reads one row of listCols into r.
func scanRow(rows interface{ Scan(...any) error }, r *resource.Resource) error {
	var attrs []byte
	if err := rows.Scan(&r.ID, &r.Name, &r.Description, &r.Status, &attrs, &r.Version,
		&r.CreatedByUserID, &r.CreatedByAPIKeyID, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return err
	}
	r.Attributes = attrs
	return nil
}

// listQuery is List's statement (the plan test explains it).
func listQuery(orgID uuid.UUID, f resource.Filter, after *tenant.Cursor, limit int) (string, []any) {
	key, ok := sortKeys[f.Sort.Field]
	if !ok {
		key = sortKeys["created_at"]
	}
	live := ` FROM resources WHERE org_id = $1 AND deleted_at IS NULL`
	args := []any{orgID}
	if f.Status != "" {
		args = append(args, f.Status)
		live += ` AND status = $2`
	}
	if f.Q == "" {
		return tenant.KeysetBy(`SELECT `+listCols+live, args, key, "id", f.Sort.Desc, after, limit)
	}
	// A search filters the tenant's live rows walked in the sort's index
	// order: under RLS no index can answer a non-leakproof LIKE (see
	// migrations/00500_resources.sql). The walk picks the page's IDs from
	// the index alone (each sort's index holds name and status, migration
	// 00770), and only the page's rows are read from the table.
	args = append(args, "%"+likeEscaper.Replace(f.Q)+"%")
	inner, args := tenant.KeysetBy(`SELECT id`+live+` AND lower(name) LIKE lower($`+strconv.Itoa(len(args))+`)`,
		args, key, "id", f.Sort.Desc, after, limit)
	dir := ""
	if f.Sort.Desc {
		dir = " DESC"
	}
	return `SELECT ` + listCols + ` FROM resources WHERE org_id = $1 AND deleted_at IS NULL AND id IN (` + inner +
		`) ORDER BY ` + key + dir + `, id` + dir, args
}

// Update writes r's mutable fields.
func (Store) Update(ctx context.Context, tx sqlx.ExtContext, r *resource.Resource) error {
	const q = `UPDATE resources SET name = $3, description = $4, status = $5, attributes = $6, version = $7, updated_at = $8
		WHERE org_id = $1 AND id = $2 RETURNING ` + cols
	var out row
	err := sqlx.GetContext(ctx, tx, &out, q, r.OrgID, r.ID, r.Name, r.Description, r.Status, string(r.Attributes), r.Version, r.UpdatedAt)
	if err != nil {
		return postgres.Translate(err)
	}
	*r = out.resource()
	return nil
}

// SetDeleted sets or clears deleted_at.
func (Store) SetDeleted(ctx context.Context, tx sqlx.ExtContext, orgID, id uuid.UUID, at *time.Time) (*resource.Resource, error) {
	const q = `UPDATE resources SET deleted_at = $3 WHERE org_id = $1 AND id = $2 RETURNING ` + cols
	var out row
	if err := sqlx.GetContext(ctx, tx, &out, q, orgID, id, at); err != nil {
		return nil, postgres.Translate(err)
	}
	r := out.resource()
	return &r, nil
}

// Purgeable locks up to limit resources deleted before `before`, oldest
// deletion first, skipping rows another transaction holds.
func (Store) Purgeable(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, before time.Time, limit int) ([]uuid.UUID, error) {
	const q = `SELECT id FROM resources WHERE org_id = $1 AND deleted_at < $2
		ORDER BY deleted_at, id LIMIT $3 FOR UPDATE SKIP LOCKED`
	var ids []uuid.UUID
	err := sqlx.SelectContext(ctx, tx, &ids, q, orgID, before, limit)
	return ids, err
}

// Purge deletes the resources ids, which must be soft-deleted.
func (Store) Purge(ctx context.Context, tx sqlx.ExecerContext, orgID uuid.UUID, ids []uuid.UUID) (int64, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM resources WHERE org_id = $1 AND id = ANY($2) AND deleted_at IS NOT NULL`,
		orgID, postgres.Array(ids))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// OrgIDs lists organization IDs after `after`, in order; organizations is
// not under Row Level Security, so the pool reads it.
func (Store) OrgIDs(ctx context.Context, db sqlx.QueryerContext, after uuid.UUID, limit int) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := sqlx.SelectContext(ctx, db, &ids, `SELECT id FROM organizations WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	return ids, err
}
