package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// AddReady stores body as a ready file of orgID's live resource, without a
// client upload: for seeding (keelctl seed-demo). The bytes pass the same
// checks as an upload's (policy, sniffed type, storage limit), the file is
// counted, and both writes are audited with createdBy (nil: no actor) as
// the actor.
func (s *Service) AddReady(ctx context.Context, orgID, resourceID uuid.UUID, createdBy *uuid.UUID, filename, contentType string, body []byte) (*File, error) {
	if s.Objects == nil {
		return nil, ErrNotConfigured
	}
	in := NewFile{Filename: filename, ContentType: contentType, Size: int64(len(body))}
	if err := s.validate(&in); err != nil {
		return nil, err
	}
	head := body[:min(len(body), sniffLen)]
	chain := sniff(head)
	if ok, why := acceptable(in.ContentType, chain, s.Policy.Allowed()); !ok {
		return nil, fmt.Errorf("add file %q: %s", filename, why)
	}
	sum := sha256.Sum256(body)
	size := int64(len(body))
	f := &File{ID: postgres.NewID(), OrgID: orgID, ResourceID: resourceID, Filename: in.Filename, ContentType: in.ContentType,
		Size: in.Size, Status: StatusPending, CreatedByUserID: createdBy}
	if err := s.Objects.Put(ctx, Key(orgID, f.ID), in.ContentType, body); err != nil {
		return nil, err
	}
	if isImage(chain[0]) {
		if th, err := makeThumbnail(bytes.NewReader(body), s.maxPixels()); err == nil {
			if err := s.Objects.Put(ctx, ThumbnailKey(orgID, f.ID), th.contentType, th.body); err != nil {
				return nil, err
			}
			f.HasThumbnail = true
		}
	}
	err := postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
		thumb := f.HasThumbnail
		if err := s.Store.Create(ctx, tx, f, s.now()); errors.Is(err, postgres.ErrNotFound) {
			return ErrNoResource
		} else if err != nil {
			return err
		}
		if s.Limiter != nil {
			if err := s.Limiter.Reserve(ctx, tx, orgID, plan.StorageBytes, size); err != nil {
				return err
			}
		}
		f.Status, f.SHA256, f.DetectedType, f.StoredSize, f.HasThumbnail = StatusReady, hex.EncodeToString(sum[:]), chain[0], &size, thumb
		if err := s.Store.SetReady(ctx, tx, f, s.now()); err != nil {
			return err
		}
		for _, action := range []string{"file.created", "file.ready"} {
			e := audit.Entry{OrgID: orgID, ActorUserID: createdBy, Action: action, TargetType: "file", TargetID: f.ID.String()}
			if err := audit.Record(ctx, tx, e.WithDetails(map[string]any{"resource_id": resourceID, "filename": f.Filename})); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = s.deleteObjects(context.WithoutCancel(ctx), f)
		return nil, err
	}
	return f, nil
}
