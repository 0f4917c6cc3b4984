// Package file runs the files of resources: a client announces a file and
// gets a presigned S3 PUT (content type and length bound into the
// signature), uploads straight to S3, and completes; file:process then
// checks the object's size, SHA-256 and sniffed type, writes an image's
// thumbnail, and marks the file ready, counted against the organization's
// storage limit, or rejected with its objects deleted. Downloads are
// presigned GETs. Object keys derive from the organization and file IDs
// only (Key), never from what a client sent.
package file

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/file/filepolicy"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/tenant"
	"github.com/keelhq/keel/jobs/task"
)

// How long presigned URLs work.
const (
	UploadTTL   = 15 * time.Minute
	DownloadTTL = 5 * time.Minute
	// PendingTTL is how long a file may stay pending before
	// files:cleanup-pending removes it and its object.
	PendingTTL = 24 * time.Hour
)

// The upload policy's type and defaults live in the leaf filepolicy, which
// the configuration reads without importing this package.
type Policy = filepolicy.Policy

// DefaultAllowedTypes are the types FILES_ALLOWED_TYPES defaults to.
var DefaultAllowedTypes = filepolicy.DefaultAllowedTypes

// DefaultMaxBytes is FILES_MAX_BYTES's default: 100 MiB.
const DefaultMaxBytes = filepolicy.DefaultMaxBytes

// Service runs files.
type Service struct {
	DB    *sqlx.DB
	Store Store
	// Objects is the bucket; nil means file storage is not configured
	// (S3_BUCKET unset): uploads and downloads answer 503, and what needs
	// no object (listing, deleting rows) still works.
	Objects Objects
	// Limiter counts ready files against the storage limit.
	Limiter *plan.Limiter
	Policy  Policy
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxPixels bounds the images file:process decodes for a thumbnail;
	// zero means DefaultMaxPixels.
	MaxPixels int64
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Errors the service answers with.
var (
	ErrNotFound      = apperr.New(apperr.NotFound, "not_found", "No such file in this organization.")
	ErrNoResource    = apperr.New(apperr.NotFound, "not_found", "No such resource in this organization.")
	ErrRejected      = apperr.New(apperr.Conflict, "file_rejected", "This file was rejected; upload it again as a new file.")
	ErrNotConfigured = apperr.New(apperr.Unavailable, "storage_not_configured", "File storage is not configured on this server (S3_BUCKET).")
)

// NewFile is what a client declares about a file it is about to upload.
type NewFile struct {
	Filename    string
	ContentType string
	Size        int64
}

// Upload is a created file and the presigned PUT to upload it with.
type Upload struct {
	File *File
	Put  s3.Presigned
}

// Download is a file with, when it is ready, presigned GETs of it and of
// its thumbnail.
type Download struct {
	File      *File
	URL       *s3.Presigned
	Thumbnail *s3.Presigned
}

// validate checks a declaration against the policy and normalizes it.
func (s *Service) validate(in *NewFile) error {
	var fields []apperr.FieldError
	switch n := utf8.RuneCountInString(in.Filename); {
	case strings.TrimSpace(in.Filename) == "":
		fields = append(fields, apperr.FieldError{Field: "filename", Message: "is required"})
	case !utf8.ValidString(in.Filename) || strings.ContainsRune(in.Filename, 0):
		fields = append(fields, apperr.FieldError{Field: "filename", Message: "must be valid UTF-8 text without NUL"})
	case n > 255:
		fields = append(fields, apperr.FieldError{Field: "filename", Message: "must be at most 255 characters"})
	}
	mt, params, err := mime.ParseMediaType(in.ContentType)
	switch {
	case err != nil || len(params) > 0:
		fields = append(fields, apperr.FieldError{Field: "content_type", Message: "must be a media type such as image/png, without parameters"})
	case !slices.Contains(s.Policy.Allowed(), mt):
		fields = append(fields, apperr.FieldError{Field: "content_type", Message: "must be one of " + strings.Join(s.Policy.Allowed(), ", ")})
	default:
		in.ContentType = mt
	}
	if in.Size < 1 {
		fields = append(fields, apperr.FieldError{Field: "size", Message: "must be at least 1 byte"})
	}
	if len(fields) > 0 {
		return apperr.Validation(fields...)
	}
	if in.Size > s.Policy.Limit() {
		return apperr.New(apperr.TooLarge, "file_too_large",
			fmt.Sprintf("A file may be at most %d bytes (%s).", s.Policy.Limit(), plan.Describe(plan.StorageBytes, s.Policy.Limit())))
	}
	return nil
}

// Create announces a file of a live resource (members and up) and returns
// it, pending, with the presigned PUT that uploads it: valid UploadTTL,
// for exactly the declared type and size. It answers 402 when the size
// alone would pass the storage limit now; file:process counts it for good.
func (s *Service) Create(ctx context.Context, p *tenant.Principal, resourceID uuid.UUID, in NewFile, meta audit.Meta) (*Upload, error) {
	if s.Objects == nil {
		return nil, ErrNotConfigured
	}
	if err := s.validate(&in); err != nil {
		return nil, err
	}
	f := &File{ID: postgres.NewID(), OrgID: p.OrgID, ResourceID: resourceID, Filename: in.Filename,
		ContentType: in.ContentType, Size: in.Size, Status: StatusPending}
	if p.IsUser() {
		f.CreatedByUserID = &p.UserID
	} else if p.APIKeyID != uuid.Nil {
		f.CreatedByAPIKeyID = &p.APIKeyID
	}
	var put s3.Presigned
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, _ string) error {
		q := postgres.Prepared(tx)
		if err := s.Store.Create(ctx, q, f, s.now()); errors.Is(err, postgres.ErrNotFound) {
			return ErrNoResource
		} else if err != nil {
			return err
		}
		if s.Limiter != nil {
			if err := s.Limiter.Check(ctx, q, p.OrgID, plan.StorageBytes, f.Size); err != nil {
				return err
			}
		}
		var err error
		if put, err = s.Objects.PresignPut(ctx, Key(f.OrgID, f.ID), f.ContentType, f.Size, UploadTTL); err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.By(p, meta, "file.created", "file", f.ID.String()).WithDetails(map[string]any{
			"resource_id": resourceID, "filename": f.Filename, "content_type": f.ContentType, "size": f.Size}))
	})
	if err != nil {
		return nil, err
	}
	return &Upload{File: f, Put: put}, nil
}

// Complete announces that a pending file's upload is done and enqueues
// file:process (members and up). It is idempotent: completing a file
// already completed or ready returns it unchanged; a rejected file is
// ErrRejected (409), since its object is gone.
func (s *Service) Complete(ctx context.Context, p *tenant.Principal, id uuid.UUID, meta audit.Meta) (*File, error) {
	var f *File
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, _ string) error {
		q := postgres.Prepared(tx)
		var err error
		if f, err = s.get(ctx, q, p.OrgID, id, true); err != nil {
			return err
		}
		switch {
		case f.Status == StatusRejected:
			return ErrRejected
		case f.Status == StatusReady || f.CompletedAt != nil:
			return nil
		}
		at := s.now()
		if err := s.Store.SetCompleted(ctx, q, p.OrgID, id, at); err != nil {
			return err
		}
		f.CompletedAt = &at
		t, err := task.NewFileProcessTask(p.OrgID, id)
		if err != nil {
			return err
		}
		if _, err := outbox.Add(ctx, tx, t); err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.By(p, meta, "file.completed", "file", id.String()))
	})
	return f, err
}

// get reads a file of a live resource, ErrNotFound otherwise.
func (s *Service) get(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID, lock bool) (*File, error) {
	f, err := s.Store.Get(ctx, tx, orgID, id, lock)
	if errors.Is(err, postgres.ErrNotFound) {
		return nil, ErrNotFound
	}
	return f, err
}

// Get returns a file (members and up) and, when it is ready, a presigned
// GET valid DownloadTTL that downloads it under its filename, and one of
// its thumbnail when it has one.
func (s *Service) Get(ctx context.Context, p *tenant.Principal, id uuid.UUID) (*Download, error) {
	var f *File
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, _ string) error {
		var err error
		f, err = s.get(ctx, postgres.Prepared(tx), p.OrgID, id, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	d := &Download{File: f}
	if f.Status != StatusReady {
		return d, nil
	}
	if s.Objects == nil {
		return nil, ErrNotConfigured
	}
	u, err := s.Objects.PresignGet(ctx, Key(f.OrgID, f.ID), Disposition(f.Filename), DownloadTTL)
	if err != nil {
		return nil, err
	}
	d.URL = &u
	if f.HasThumbnail {
		t, err := s.Objects.PresignGet(ctx, ThumbnailKey(f.OrgID, f.ID), "", DownloadTTL)
		if err != nil {
			return nil, err
		}
		d.Thumbnail = &t
	}
	return d, nil
}

// List returns a page of a live resource's files, newest first (members
// and up); a deleted or unknown resource is ErrNoResource.
func (s *Service) List(ctx context.Context, p *tenant.Principal, resourceID uuid.UUID, pg tenant.Page) ([]File, string, error) {
	return tenant.List(ctx, s.DB, p, pg, tenant.RoleMember, func(tx *sqlx.Tx, after *tenant.Cursor, limit int) ([]File, error) {
		live, err := s.Store.ResourceLive(ctx, tx, p.OrgID, resourceID)
		if err != nil {
			return nil, err
		}
		if !live {
			return nil, ErrNoResource
		}
		return s.Store.List(ctx, tx, p.OrgID, resourceID, after, limit)
	}, func(f *File) (time.Time, uuid.UUID) { return f.CreatedAt, f.ID })
}

// Delete removes a file: its uploader, or an admin or owner. In one
// transaction it deletes the row, releases the storage a ready file
// counted, and enqueues file:delete-objects, which deletes the object and
// the thumbnail.
func (s *Service) Delete(ctx context.Context, p *tenant.Principal, id uuid.UUID, meta audit.Meta) error {
	return tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, role string) error {
		q := postgres.Prepared(tx)
		f, err := s.get(ctx, q, p.OrgID, id, true)
		if err != nil {
			return err
		}
		if !tenant.RoleAtLeast(role, tenant.RoleAdmin) && !uploadedBy(f, p) {
			return apperr.New(apperr.Forbidden, "forbidden", "Only the file's uploader, an admin or an owner may delete it.")
		}
		if _, err := s.remove(ctx, tx, p.OrgID, func() ([]File, error) { return s.Store.Delete(ctx, tx, p.OrgID, []uuid.UUID{id}) }); err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.By(p, meta, "file.deleted", "file", id.String()).WithDetails(map[string]any{
			"resource_id": f.ResourceID, "filename": f.Filename, "status": f.Status}))
	})
}

func uploadedBy(f *File, p *tenant.Principal) bool {
	return (p.IsUser() && f.CreatedByUserID != nil && *f.CreatedByUserID == p.UserID) ||
		(p.APIKeyID != uuid.Nil && f.CreatedByAPIKeyID != nil && *f.CreatedByAPIKeyID == p.APIKeyID)
}

// remove deletes rows with del inside tx (tenant orgID), releases the
// storage the ready ones counted, enqueues the deletion of their objects,
// and returns the rows it deleted.
func (s *Service) remove(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, del func() ([]File, error)) ([]File, error) {
	gone, err := del()
	if err != nil {
		return nil, err
	}
	var counted int64
	ids := make([]uuid.UUID, 0, len(gone))
	for _, f := range gone {
		if f.Status == StatusReady && f.StoredSize != nil {
			counted += *f.StoredSize
		}
		ids = append(ids, f.ID)
	}
	if counted > 0 {
		if s.Limiter == nil {
			return nil, errors.New("file: releasing storage needs a Limiter")
		}
		if err := s.Limiter.Release(ctx, tx, orgID, plan.StorageBytes, counted); err != nil {
			return nil, err
		}
	}
	if err := enqueueDelete(ctx, tx, orgID, ids, time.Time{}); err != nil {
		return nil, err
	}
	// A pending file's upload URL may still work: its holder could PUT
	// after the deletion. Delete those objects once more when the URLs
	// have expired.
	var late []uuid.UUID
	var lateAt time.Time
	for _, f := range gone {
		if f.Status == StatusPending && s.now().Before(f.CreatedAt.Add(UploadTTL)) {
			late = append(late, f.ID)
			lateAt = maxTime(lateAt, f.CreatedAt.Add(UploadTTL+time.Minute))
		}
	}
	if err := enqueueDelete(ctx, tx, orgID, late, lateAt); err != nil {
		return nil, err
	}
	return gone, nil
}

// enqueueDelete adds file:delete-objects tasks for ids (none when empty),
// to run at at (zero: at once).
func enqueueDelete(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, ids []uuid.UUID, at time.Time) error {
	for chunk := range slices.Chunk(ids, task.MaxFileIDsPerTask) {
		t, err := task.NewFileDeleteObjectsTask(orgID, chunk)
		if err != nil {
			return err
		}
		t.ProcessAt = at
		if _, err := outbox.Add(ctx, tx, t); err != nil {
			return err
		}
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// RemoveForResources removes every file of the resources inside tx (whose
// tenant is orgID): the resources capability calls it when it purges
// resources. It deletes the rows, releases the storage they counted, audits
// each removal, and enqueues file:delete-objects for their objects.
func (s *Service) RemoveForResources(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, resourceIDs []uuid.UUID) error {
	if len(resourceIDs) == 0 {
		return nil
	}
	gone, err := s.remove(ctx, tx, orgID, func() ([]File, error) { return s.Store.DeleteOfResources(ctx, tx, orgID, resourceIDs) })
	if err != nil {
		return fmt.Errorf("remove files of resources: %w", err)
	}
	for _, f := range gone {
		e := audit.Entry{OrgID: orgID, Action: "file.purged", TargetType: "file", TargetID: f.ID.String()}
		if err := audit.Record(ctx, tx, e.WithDetails(map[string]any{"resource_id": f.ResourceID, "filename": f.Filename})); err != nil {
			return err
		}
	}
	return nil
}

// DeleteObjects deletes the objects of orgID's files ids whose rows are
// gone (file:delete-objects). A file that still has a row is left alone,
// so a stray or forged task cannot delete a live file's object.
func (s *Service) DeleteObjects(ctx context.Context, orgID uuid.UUID, ids []uuid.UUID) error {
	if s.Objects == nil {
		return ErrNotConfigured
	}
	var live []uuid.UUID
	err := postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
		var err error
		live, err = s.Store.Existing(ctx, tx, orgID, ids)
		return err
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if slices.Contains(live, id) {
			continue
		}
		if err := s.Objects.Delete(ctx, Key(orgID, id), ThumbnailKey(orgID, id)); err != nil {
			return err
		}
	}
	return nil
}

// CleanupResult is what one files:cleanup-pending run did.
type CleanupResult struct {
	Orgs    int `json:"orgs"`
	Removed int `json:"removed"`
}

// CleanupPending removes, in every organization, the files still pending
// PendingTTL after their creation, and enqueues the deletion of their
// objects (files:cleanup-pending). Each organization is one transaction
// under its own tenant.
func (s *Service) CleanupPending(ctx context.Context) (CleanupResult, error) {
	var res CleanupResult
	orgs, err := s.Store.OrgIDs(ctx, s.DB)
	if err != nil {
		return res, err
	}
	cutoff := s.now().Add(-PendingTTL)
	const batch = 500
	for _, org := range orgs {
		removed := 0
		for {
			var n int
			err := postgres.InTx(ctx, s.DB, org, func(tx *sqlx.Tx) error {
				gone, err := s.remove(ctx, tx, org, func() ([]File, error) { return s.Store.DeletePending(ctx, tx, org, cutoff, batch) })
				if err != nil {
					return err
				}
				n = len(gone)
				for _, f := range gone {
					e := audit.Entry{OrgID: org, Action: "file.expired", TargetType: "file", TargetID: f.ID.String()}
					if err := audit.Record(ctx, tx, e.WithDetails(map[string]any{"resource_id": f.ResourceID, "filename": f.Filename})); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return res, fmt.Errorf("cleanup pending files of %s: %w", org, err)
			}
			removed += n
			if n < batch {
				break
			}
		}
		if removed > 0 {
			res.Orgs++
			res.Removed += removed
		}
	}
	return res, nil
}
