package file

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/s3"
)

// Process checks orgID's file id (file:process). Run it under the task's
// organization: a file of another organization is not found, and nothing
// happens. It is idempotent under retries and duplicate delivery: a ready
// file is left alone (never counted twice), a rejected one only has its
// objects deleted again, and the move out of pending happens once, under
// the row's lock.
//
// The object is read once, as a stream: through SHA-256 and a byte count,
// its first bytes sniffed for the type, and, for an image within
// MaxPixels, decoded for the thumbnail. Nothing holds the whole file.
func (s *Service) Process(ctx context.Context, orgID, id uuid.UUID) error {
	if s.Objects == nil {
		return ErrNotConfigured
	}
	var f *File
	err := postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
		var err error
		f, err = s.Store.Lock(ctx, tx, orgID, id)
		return err
	})
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		// Deleted (or never this organization's). A crashed earlier run may
		// have left a thumbnail; the keys derive from this task's
		// organization, where no such file lives, so deleting them is safe.
		zerolog.Ctx(ctx).Info().Str("file_id", id.String()).Msg("file:process: no such file in this organization")
		return s.deleteObjects(ctx, &File{OrgID: orgID, ID: id})
	case err != nil:
		return err
	case f.Status == StatusReady:
		return nil
	case f.Status == StatusRejected:
		return s.deleteObjects(ctx, f)
	}

	key := Key(orgID, id)
	info, err := s.Objects.Head(ctx, key)
	if errors.Is(err, s3.ErrNotFound) {
		return s.reject(ctx, f, "not uploaded: no object was found for this file")
	} else if err != nil {
		return err
	}
	if info.Size != f.Size {
		return s.reject(ctx, f, fmt.Sprintf("size mismatch: uploaded %d bytes, declared %d", info.Size, f.Size))
	}
	r, err := s.inspect(ctx, f)
	if errors.Is(err, s3.ErrNotFound) {
		return s.reject(ctx, f, "not uploaded: the object disappeared while it was read")
	} else if err != nil {
		return err
	}
	if r.size != f.Size {
		return s.reject(ctx, f, fmt.Sprintf("size mismatch: read %d bytes, declared %d", r.size, f.Size))
	}
	if ok, why := acceptable(f.ContentType, r.chain, s.Policy.Allowed()); !ok {
		return s.reject(ctx, f, why)
	}
	if r.thumbnail != nil {
		if err := s.Objects.Put(ctx, ThumbnailKey(orgID, id), r.thumbnail.contentType, r.thumbnail.body); err != nil {
			return err
		}
	}
	return s.finish(ctx, f, r)
}

// inspection is what reading an object found.
type inspection struct {
	sha256    string
	size      int64
	chain     []string // sniffed type, most specific first
	thumbnail *thumbnail
}

// countingHash is the SHA-256 and length of what passes through it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

func (s *Service) inspect(ctx context.Context, f *File) (*inspection, error) {
	body, err := s.Objects.Open(ctx, Key(f.OrgID, f.ID))
	if err != nil {
		return nil, err
	}
	defer body.Close()
	sum := &countingHash{h: sha256.New()}
	// Everything read from br has passed through the hash, whoever reads
	// it: the sniffer's peek, the image decoder, the final drain.
	br := bufio.NewReaderSize(io.TeeReader(body, sum), sniffLen)
	head, err := br.Peek(sniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("read %s: %w", Key(f.OrgID, f.ID), err)
	}
	r := &inspection{chain: sniff(head)}
	if len(r.chain) > 0 && isImage(r.chain[0]) && r.chain[0] == f.ContentType {
		th, terr := makeThumbnail(br, s.maxPixels())
		if terr != nil {
			zerolog.Ctx(ctx).Info().Err(terr).Str("file_id", f.ID.String()).Msg("file:process: no thumbnail")
		}
		r.thumbnail = th
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("read %s: %w", Key(f.OrgID, f.ID), err)
	}
	r.sha256, r.size = hex.EncodeToString(sum.h.Sum(nil)), sum.n
	return r, nil
}

// finish marks f ready and counts its storage, in one transaction that
// first re-reads the row under its lock; over the storage limit it rejects
// f instead.
func (s *Service) finish(ctx context.Context, f *File, r *inspection) error {
	var rejectWhy string
	var gone bool
	err := postgres.InTx(ctx, s.DB, f.OrgID, func(tx *sqlx.Tx) error {
		cur, err := s.Store.Lock(ctx, tx, f.OrgID, f.ID)
		if errors.Is(err, postgres.ErrNotFound) {
			gone = true // deleted meanwhile: what this run wrote must go too
			return nil
		} else if err != nil {
			return err
		}
		if cur.Status != StatusPending {
			return nil
		}
		if s.Limiter != nil {
			err := s.Limiter.Reserve(ctx, tx, f.OrgID, plan.StorageBytes, r.size)
			if e, ok := apperr.As(err); ok && e.Code == "plan_limit_reached" {
				rejectWhy = e.Message
				return s.setRejected(ctx, tx, cur, "storage limit reached: "+e.Message)
			} else if err != nil {
				return err
			}
		}
		f.Status, f.SHA256, f.DetectedType, f.StoredSize, f.HasThumbnail = StatusReady, r.sha256, r.chain[0], &r.size, r.thumbnail != nil
		if err := s.Store.SetReady(ctx, tx, f, s.now()); err != nil {
			return err
		}
		e := audit.Entry{OrgID: f.OrgID, Action: "file.ready", TargetType: "file", TargetID: f.ID.String()}
		return audit.Record(ctx, tx, e.WithDetails(map[string]any{"sha256": r.sha256, "detected_type": r.chain[0], "size": r.size}))
	})
	if err != nil {
		return err
	}
	if gone || rejectWhy != "" {
		return s.deleteObjects(ctx, f)
	}
	return nil
}

// reject marks a pending f rejected for why, then deletes its objects.
func (s *Service) reject(ctx context.Context, f *File, why string) error {
	err := postgres.InTx(ctx, s.DB, f.OrgID, func(tx *sqlx.Tx) error {
		cur, err := s.Store.Lock(ctx, tx, f.OrgID, f.ID)
		if errors.Is(err, postgres.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if cur.Status != StatusPending {
			return nil
		}
		return s.setRejected(ctx, tx, cur, why)
	})
	if err != nil {
		return err
	}
	return s.deleteObjects(ctx, f)
}

func (s *Service) setRejected(ctx context.Context, tx *sqlx.Tx, f *File, why string) error {
	if err := s.Store.SetRejected(ctx, tx, f.OrgID, f.ID, why, s.now()); err != nil {
		return err
	}
	e := audit.Entry{OrgID: f.OrgID, Action: "file.rejected", TargetType: "file", TargetID: f.ID.String()}
	return audit.Record(ctx, tx, e.WithDetails(map[string]string{"reason": why}))
}

// deleteObjects deletes f's object and thumbnail, either of which may be
// missing.
func (s *Service) deleteObjects(ctx context.Context, f *File) error {
	return s.Objects.Delete(ctx, Key(f.OrgID, f.ID), ThumbnailKey(f.OrgID, f.ID))
}

func isImage(t string) bool {
	switch t {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return true
	}
	return false
}
