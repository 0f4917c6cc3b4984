// Package filedb stores files (the files table). Every statement carries
// org_id and runs in a transaction whose tenant is that organization, so
// the application filter and Row Level Security agree. It reads the
// resources table only to ask whether a file's resource is live: a file
// of a soft-deleted resource is hidden with it.
package filedb

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/retention"
	"github.com/keelhq/keel/internal/tenant"
)

// Store runs the queries; its methods take the transaction they run in.
type Store struct{}

var _ file.Store = Store{}

type row struct {
	OrgID             uuid.UUID  `db:"org_id"`
	ID                uuid.UUID  `db:"id"`
	ResourceID        uuid.UUID  `db:"resource_id"`
	Filename          string     `db:"filename"`
	ContentType       string     `db:"content_type"`
	Size              int64      `db:"size"`
	Status            string     `db:"status"`
	RejectReason      string     `db:"reject_reason"`
	SHA256            *string    `db:"sha256"`
	DetectedType      *string    `db:"detected_type"`
	StoredSize        *int64     `db:"stored_size"`
	HasThumbnail      bool       `db:"has_thumbnail"`
	CreatedByUserID   *uuid.UUID `db:"created_by_user_id"`
	CreatedByAPIKeyID *uuid.UUID `db:"created_by_api_key_id"`
	CreatedAt         time.Time  `db:"created_at"`
	UpdatedAt         time.Time  `db:"updated_at"`
	CompletedAt       *time.Time `db:"completed_at"`
}

func (r *row) file() file.File {
	f := file.File{ID: r.ID, OrgID: r.OrgID, ResourceID: r.ResourceID, Filename: r.Filename, ContentType: r.ContentType,
		Size: r.Size, Status: file.Status(r.Status), RejectReason: r.RejectReason, StoredSize: r.StoredSize,
		HasThumbnail: r.HasThumbnail, CreatedByUserID: r.CreatedByUserID, CreatedByAPIKeyID: r.CreatedByAPIKeyID,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, CompletedAt: r.CompletedAt}
	if r.SHA256 != nil {
		f.SHA256 = *r.SHA256
	}
	if r.DetectedType != nil {
		f.DetectedType = *r.DetectedType
	}
	return f
}

const cols = `f.org_id, f.id, f.resource_id, f.filename, f.content_type, f.size, f.status, f.reject_reason, f.sha256,
	f.detected_type, f.stored_size, f.has_thumbnail, f.created_by_user_id, f.created_by_api_key_id, f.created_at,
	f.updated_at, f.completed_at`

// live restricts a query on files f to those of live resources.
const live = ` AND EXISTS (SELECT 1 FROM resources r WHERE r.org_id = f.org_id AND r.id = f.resource_id AND r.deleted_at IS NULL)`

func ids(in []uuid.UUID) any {
	s := make([]string, len(in))
	for i, id := range in {
		s[i] = id.String()
	}
	return postgres.Array(s)
}

// Create inserts f when its resource is live.
func (Store) Create(ctx context.Context, tx sqlx.ExtContext, f *file.File, at time.Time) error {
	const q = `INSERT INTO files AS f (org_id, id, resource_id, filename, content_type, size, status,
			created_by_user_id, created_by_api_key_id, created_at, updated_at)
		SELECT $1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $9
		WHERE EXISTS (SELECT 1 FROM resources r WHERE r.org_id = $1 AND r.id = $3 AND r.deleted_at IS NULL)
		RETURNING ` + cols
	var r row
	err := sqlx.GetContext(ctx, tx, &r, q, f.OrgID, f.ID, f.ResourceID, f.Filename, f.ContentType, f.Size,
		f.CreatedByUserID, f.CreatedByAPIKeyID, at)
	if err != nil {
		return postgres.Translate(err)
	}
	*f = r.file()
	return nil
}

// Get reads a file of a live resource.
func (Store) Get(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID, lock bool) (*file.File, error) {
	q := `SELECT ` + cols + ` FROM files f WHERE f.org_id = $1 AND f.id = $2` + live
	if lock {
		q += ` FOR UPDATE OF f`
	}
	return one(ctx, tx, q, orgID, id)
}

// Lock reads and locks a file whatever its resource's state.
func (Store) Lock(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID) (*file.File, error) {
	return one(ctx, tx, `SELECT `+cols+` FROM files f WHERE f.org_id = $1 AND f.id = $2 FOR UPDATE`, orgID, id)
}

func one(ctx context.Context, tx sqlx.QueryerContext, q string, args ...any) (*file.File, error) {
	var r row
	if err := sqlx.GetContext(ctx, tx, &r, q, args...); err != nil {
		return nil, postgres.Translate(err)
	}
	f := r.file()
	return &f, nil
}

// ResourceLive reports whether the resource exists and is not deleted.
func (Store) ResourceLive(ctx context.Context, tx sqlx.QueryerContext, orgID, resourceID uuid.UUID) (bool, error) {
	var ok bool
	err := sqlx.GetContext(ctx, tx, &ok, `SELECT EXISTS (SELECT 1 FROM resources WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL)`, orgID, resourceID)
	return ok, err
}

// List is a keyset page of a resource's files, newest first.
func (Store) List(ctx context.Context, tx sqlx.QueryerContext, orgID, resourceID uuid.UUID, after *tenant.Cursor, limit int) ([]file.File, error) {
	// The resource's parameter comes after the ones Keyset binds.
	q, args := tenant.Keyset(`SELECT `+cols+` FROM files f WHERE f.org_id = $1 AND f.resource_id = $9`,
		"f.created_at, f.id", true, orgID, after, limit)
	return many(ctx, tx, q, args, resourceID)
}

// many runs a Keyset query whose base names an extra parameter as $9,
// renumbered after Keyset's own.
func many(ctx context.Context, tx sqlx.QueryerContext, q string, args []any, extra any) ([]file.File, error) {
	q = strings.Replace(q, "$9", "$"+strconv.Itoa(len(args)+1), 1)
	args = append(args, extra)
	var rows []row
	if err := sqlx.SelectContext(ctx, tx, &rows, q, args...); err != nil {
		return nil, err
	}
	return files(rows), nil
}

func files(rows []row) []file.File {
	out := make([]file.File, len(rows))
	for i := range rows {
		out[i] = rows[i].file()
	}
	return out
}

// SetCompleted records that the client announced the upload.
func (Store) SetCompleted(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID, at time.Time) error {
	return exec1(ctx, tx, `UPDATE files SET completed_at = $3, updated_at = $3 WHERE org_id = $1 AND id = $2 AND status = 'pending'`, orgID, id, at)
}

// SetReady marks a pending file ready with what processing found.
func (Store) SetReady(ctx context.Context, tx sqlx.ExecerContext, f *file.File, at time.Time) error {
	return exec1(ctx, tx, `UPDATE files SET status = 'ready', sha256 = $3, detected_type = $4, stored_size = $5,
		has_thumbnail = $6, updated_at = $7 WHERE org_id = $1 AND id = $2 AND status = 'pending'`,
		f.OrgID, f.ID, f.SHA256, f.DetectedType, f.StoredSize, f.HasThumbnail, at)
}

// SetRejected marks a pending file rejected.
func (Store) SetRejected(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID, reason string, at time.Time) error {
	return exec1(ctx, tx, `UPDATE files SET status = 'rejected', reject_reason = $3, updated_at = $4
		WHERE org_id = $1 AND id = $2 AND status = 'pending'`, orgID, id, reason, at)
}

func exec1(ctx context.Context, tx sqlx.ExecerContext, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return postgres.ErrNotFound
	}
	return nil
}

// Delete removes files by ID.
func (Store) Delete(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, fileIDs []uuid.UUID) ([]file.File, error) {
	return del(ctx, tx, `DELETE FROM files f WHERE f.org_id = $1 AND f.id = ANY($2::uuid[]) RETURNING `+cols, orgID, ids(fileIDs))
}

// DeleteOfResources removes every file of the resources.
func (Store) DeleteOfResources(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, resourceIDs []uuid.UUID) ([]file.File, error) {
	return del(ctx, tx, `DELETE FROM files f WHERE f.org_id = $1 AND f.resource_id = ANY($2::uuid[]) RETURNING `+cols, orgID, ids(resourceIDs))
}

// DeletePending removes up to limit pending files created before cutoff,
// oldest first, skipping rows another transaction holds (a file being
// completed or processed right now).
func (Store) DeletePending(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, cutoff time.Time, limit int) ([]file.File, error) {
	return del(ctx, tx, `DELETE FROM files f WHERE f.org_id = $1 AND f.id IN (
			SELECT id FROM files WHERE org_id = $1 AND status = 'pending' AND created_at < $2
			ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+cols, orgID, cutoff, limit)
}

func del(ctx context.Context, tx sqlx.QueryerContext, q string, args ...any) ([]file.File, error) {
	var rows []row
	if err := sqlx.SelectContext(ctx, tx, &rows, q, args...); err != nil {
		return nil, err
	}
	return files(rows), nil
}

// Existing returns those of fileIDs that still have a row.
func (Store) Existing(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, fileIDs []uuid.UUID) ([]uuid.UUID, error) {
	var out []uuid.UUID
	err := sqlx.SelectContext(ctx, tx, &out, `SELECT id FROM files WHERE org_id = $1 AND id = ANY($2::uuid[])`, orgID, ids(fileIDs))
	return out, err
}

// FirstResource returns the oldest live resource of orgID.
func (Store) FirstResource(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID) (uuid.UUID, error) {
	var id uuid.UUID
	err := sqlx.GetContext(ctx, tx, &id, `SELECT id FROM resources WHERE org_id = $1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT 1`, orgID)
	return id, postgres.Translate(err)
}

// OrgIDs lists every organization.
func (Store) OrgIDs(ctx context.Context, db sqlx.QueryerContext) ([]uuid.UUID, error) {
	return retention.Store{}.OrgIDs(ctx, db)
}
