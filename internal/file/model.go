package file

import (
	"context"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/tenant"
)

// Status is where a file is in its life.
type Status string

// The statuses. A pending file is waiting for its upload or for
// file:process; a ready one was checked and is counted against the
// organization's storage; a rejected one was refused and its objects
// deleted.
const (
	StatusPending  Status = "pending"
	StatusReady    Status = "ready"
	StatusRejected Status = "rejected"
)

// File is one uploaded (or announced) file of a resource.
type File struct {
	ID, OrgID, ResourceID uuid.UUID
	// Filename is the client's name for it: metadata only, never a key.
	Filename string
	// ContentType and Size are what the client declared; both were bound
	// into the presigned upload.
	ContentType string
	Size        int64
	Status      Status
	// RejectReason says why a rejected file was refused.
	RejectReason string
	// SHA256 (hex), DetectedType and StoredSize are what file:process found
	// in the object; set on ready files.
	SHA256               string
	DetectedType         string
	StoredSize           *int64
	HasThumbnail         bool
	CreatedByUserID      *uuid.UUID
	CreatedByAPIKeyID    *uuid.UUID
	CreatedAt, UpdatedAt time.Time
	// CompletedAt is when the client announced the upload done.
	CompletedAt *time.Time
}

// Key is the object key of org's file id: orgs/{org_id}/files/{file_id}.
func Key(orgID, id uuid.UUID) string {
	return "orgs/" + orgID.String() + "/files/" + id.String()
}

// ThumbnailKey is the key of the file's thumbnail, beside it. It is not
// under Key + "/": an object store on a file system (versitygw's posix
// backend) cannot hold both a file and a folder of one name.
func ThumbnailKey(orgID, id uuid.UUID) string {
	return Key(orgID, id) + ".thumbnail"
}

// Store is the files storage the Service needs; filedb.Store implements it
// on PostgreSQL. Every method runs in a transaction whose tenant is orgID
// (Row Level Security hides every other organization's rows); a missing
// row is postgres.ErrNotFound.
type Store interface {
	// Create inserts f when its resource exists in f.OrgID and is not
	// deleted; ErrNotFound otherwise. It sets f.CreatedAt and f.UpdatedAt
	// to at.
	Create(ctx context.Context, tx sqlx.ExtContext, f *File, at time.Time) error
	// Get reads a file of a live (not soft-deleted) resource; lock takes
	// the row lock.
	Get(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID, lock bool) (*File, error)
	// Lock reads and locks a file whatever its resource's state (the
	// worker finishes what a client started).
	Lock(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID) (*File, error)
	// ResourceLive reports whether the resource exists and is not deleted.
	ResourceLive(ctx context.Context, tx sqlx.QueryerContext, orgID, resourceID uuid.UUID) (bool, error)
	// List is a keyset page of a resource's files, newest first.
	List(ctx context.Context, tx sqlx.QueryerContext, orgID, resourceID uuid.UUID, after *tenant.Cursor, limit int) ([]File, error)
	// SetCompleted records that the client announced the upload.
	SetCompleted(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID, at time.Time) error
	// SetReady and SetRejected move a pending file on; ErrNotFound when it
	// is not pending.
	SetReady(ctx context.Context, tx sqlx.ExecerContext, f *File, at time.Time) error
	SetRejected(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID, reason string, at time.Time) error
	// Delete removes files by ID and returns what they were.
	Delete(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, ids []uuid.UUID) ([]File, error)
	// DeleteOfResources removes every file of the resources and returns them.
	DeleteOfResources(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, resourceIDs []uuid.UUID) ([]File, error)
	// DeletePending removes up to limit pending files created before
	// cutoff and returns them.
	DeletePending(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, cutoff time.Time, limit int) ([]File, error)
	// Existing returns those of ids that still have a row.
	Existing(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, ids []uuid.UUID) ([]uuid.UUID, error)
	// FirstResource returns the oldest live resource of orgID (seeding
	// puts its demo file there); ErrNotFound when there is none.
	FirstResource(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID) (uuid.UUID, error)
	// OrgIDs lists every organization (the cleanup visits each under its
	// own tenant).
	OrgIDs(ctx context.Context, db sqlx.QueryerContext) ([]uuid.UUID, error)
}

// Objects is the object store the Service needs; s3.Bucket implements it.
// Missing objects are errors wrapping s3.ErrNotFound.
type Objects interface {
	PresignPut(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (s3.Presigned, error)
	PresignGet(ctx context.Context, key, disposition string, ttl time.Duration) (s3.Presigned, error)
	Head(ctx context.Context, key string) (s3.Info, error)
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	Put(ctx context.Context, key, contentType string, body []byte) error
	// Delete removes keys; a missing key is no error.
	Delete(ctx context.Context, keys ...string) error
}

var _ Objects = s3.Bucket{}
