package resource

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// Service runs resources.
type Service struct {
	DB    *sqlx.DB
	Store Store
	// Limits counts resources against the plan; nil counts nothing (a
	// service that only purges).
	Limits Limiter
	// Files removes a purged resource's files; nil when there are none.
	Files FileRemover
	// Now is the service's clock: it stamps created_at, updated_at and
	// deleted_at and decides what is past RestoreWindow; nil means
	// time.Now. Tests drive it (clocktest.Fake's Now).
	Now func() time.Time
	// PurgeBatch is how many resources one purge transaction takes; 0
	// means 500.
	PurgeBatch int
}

func (s *Service) now() time.Time {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	// PostgreSQL keeps microseconds; a cursor made from a Go time must
	// compare equal to the stored one.
	return now().UTC().Truncate(time.Microsecond)
}

// Errors the service answers with, besides the kernel's.
var (
	errNotFound    = apperr.New(apperr.NotFound, "not_found", "No such resource in this organization.")
	errNotDeleted  = apperr.New(apperr.Conflict, "not_deleted", "The resource is not deleted; there is nothing to restore.")
	errNeedVersion = apperr.New(apperr.PreconditionRequired, "precondition_required",
		`Send the version you are changing, as If-Match: "<version>" (the ETag of a GET) or "version" in the body.`)
)

// versionConflict is the 412 of a write based on a version that is no
// longer current.
func versionConflict(current, sent int64) error {
	return apperr.New(apperr.PreconditionFailed, "version_conflict",
		fmt.Sprintf("The resource is at version %d, not %d: someone changed it. Fetch it again and reapply your change.", current, sent))
}

func record(ctx context.Context, tx *sqlx.Tx, p *tenant.Principal, meta audit.Meta, action string, id uuid.UUID, details any) error {
	return audit.Record(ctx, postgres.Prepared(tx), audit.By(p, meta, action, "resource", id.String()).WithDetails(details))
}

// live returns the live resource id, locked when lock; a deleted or
// missing one is not found.
func (s *Service) live(ctx context.Context, tx *sqlx.Tx, orgID, id uuid.UUID, lock bool) (*Resource, error) {
	r, err := s.Store.Get(ctx, postgres.Prepared(tx), orgID, id, lock)
	if errors.Is(err, ErrNotFound) || (err == nil && r.DeletedAt != nil) {
		return nil, errNotFound
	}
	return r, err
}

// Create adds a resource; members and up. It counts against the plan's
// resources in the same transaction (402 plan_limit_reached past it).
//
// It is sent first as one message (createOnce); when an assumption of that
// message no longer holds, nothing of it is kept and the create runs again
// as an InOrg transaction, which answers exactly.
func (s *Service) Create(ctx context.Context, p *tenant.Principal, in Input, meta audit.Meta) (*Resource, error) {
	r, err := in.resource()
	if err != nil {
		return nil, err
	}
	if done, err := s.createOnce(ctx, p, r, meta); done {
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	err = tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, _ string) error {
		s.stamp(p, r)
		if err := s.Store.Create(ctx, postgres.Prepared(tx), r); err != nil {
			return err
		}
		if err := record(ctx, tx, p, meta, "resource.created", r.ID, createdDetails(r)); err != nil {
			return err
		}
		// Last: under a limit, the counter's lock serializes one
		// organization's creates until commit, so it is held for as
		// little as possible.
		return s.reserve(ctx, tx, p.OrgID)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// createOnce runs Create as one message (tenant.WriteOnce): the caller's
// guard, the INSERT, the audit entry, the plan's guard and the
// reservation, in Create's order. A write the message did not settle
// (done false: a guard failed, or the message does not apply) leaves
// nothing behind.
func (s *Service) createOnce(ctx context.Context, p *tenant.Principal, r *Resource, meta audit.Meta) (done bool, err error) {
	ml, ok := s.Limits.(MessageLimiter)
	if s.Limits != nil && !ok {
		return false, nil
	}
	s.stamp(p, r)
	var c postgres.Collect
	if err := audit.Record(ctx, &c, audit.By(p, meta, "resource.created", "resource", r.ID.String()).WithDetails(createdDetails(r))); err != nil {
		return true, err
	}
	stmts := append([]postgres.Stmt{s.Store.CreateStmt(r)}, c.Stmts...)
	if ml != nil {
		reserve, ok, err := ml.ReserveStmts(ctx, s.DB, p.OrgID, plan.Resources, 1)
		if err != nil || !ok {
			return err != nil, err
		}
		stmts = append(stmts, reserve...)
	}
	done, err = tenant.WriteOnce(ctx, s.DB, p, tenant.RoleMember, stmts, func(rows *sqlx.Rows) error {
		return s.Store.ScanCreated(rows, r)
	})
	if !done && ml != nil {
		ml.Forget(p.OrgID)
	}
	return done, err
}

// stamp sets what the service decides of a new resource: its ID,
// organization, first version, timestamps and creator.
func (s *Service) stamp(p *tenant.Principal, r *Resource) {
	r.ID, r.OrgID, r.Version = postgres.NewID(), p.OrgID, 1
	r.CreatedAt = s.now()
	r.UpdatedAt = r.CreatedAt
	r.CreatedByUserID, r.CreatedByAPIKeyID = nil, nil
	if p.IsUser() {
		r.CreatedByUserID = &p.UserID
	} else if p.APIKeyID != uuid.Nil {
		r.CreatedByAPIKeyID = &p.APIKeyID
	}
}

// createdDetails is the audit detail of a create.
func createdDetails(r *Resource) map[string]string {
	return map[string]string{"name": r.Name, "status": r.Status}
}

// Get returns a live resource; members and up.
func (s *Service) Get(ctx context.Context, p *tenant.Principal, id uuid.UUID) (*Resource, error) {
	var r *Resource
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, _ string) error {
		var err error
		r, err = s.live(ctx, tx, p.OrgID, id, false)
		return err
	})
	return r, err
}

// List returns a keyset page of live resources matching f; members and up.
// A cursor continues only the sort it was made for.
func (s *Service) List(ctx context.Context, p *tenant.Principal, pg tenant.Page, f Filter) ([]Resource, string, error) {
	if err := f.validate(); err != nil {
		return nil, "", err
	}
	key := func(r *Resource) tenant.Cursor {
		switch f.Sort.Field {
		case "name":
			return tenant.Cursor{Text: r.Name, IsText: true, ID: r.ID}
		case "updated_at":
			return tenant.Cursor{At: r.UpdatedAt, ID: r.ID}
		}
		return tenant.Cursor{At: r.CreatedAt, ID: r.ID}
	}
	return tenant.ListSorted(ctx, s.DB, p, pg, f.Sort, tenant.RoleMember, func(q tenant.Querier, after *tenant.Cursor, limit int) ([]Resource, error) {
		return s.Store.List(ctx, q, p.OrgID, f, after, limit)
	}, key)
}

// Update applies a partial update to a live resource at version; members
// and up. version 0 means the client sent none (428); a version that is
// not current answers 412 version_conflict. A patch that changes nothing
// returns the resource as it is, without a new version.
func (s *Service) Update(ctx context.Context, p *tenant.Principal, id uuid.UUID, version int64, patch Patch, meta audit.Meta) (*Resource, error) {
	if version == 0 {
		return nil, errNeedVersion
	}
	if err := patch.validate(); err != nil {
		return nil, err
	}
	var r *Resource
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, _ string) error {
		var err error
		if r, err = s.live(ctx, tx, p.OrgID, id, true); err != nil {
			return err
		}
		if r.Version != version {
			return versionConflict(r.Version, version)
		}
		changed := patch.apply(r)
		if len(changed) == 0 {
			return nil
		}
		r.Version++
		r.UpdatedAt = s.now()
		if err := s.Store.Update(ctx, postgres.Prepared(tx), r); err != nil {
			return err
		}
		return record(ctx, tx, p, meta, "resource.updated", r.ID, map[string]any{"fields": changed, "version": r.Version})
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Delete soft-deletes a live resource; admins and owners. It no longer
// counts against the plan, and Restore can bring it back within
// RestoreWindow. version, when not 0, must be current (412 otherwise).
func (s *Service) Delete(ctx context.Context, p *tenant.Principal, id uuid.UUID, version int64, meta audit.Meta) error {
	return tenant.InOrg(ctx, s.DB, p, tenant.RoleAdmin, func(tx *sqlx.Tx, _ string) error {
		r, err := s.live(ctx, tx, p.OrgID, id, true)
		if err != nil {
			return err
		}
		if version != 0 && r.Version != version {
			return versionConflict(r.Version, version)
		}
		at := s.now()
		if _, err := s.Store.SetDeleted(ctx, postgres.Prepared(tx), p.OrgID, id, &at); err != nil {
			return err
		}
		if s.Limits != nil {
			if err := s.Limits.Release(ctx, postgres.Prepared(tx), p.OrgID, plan.Resources, 1); err != nil {
				return err
			}
		}
		return record(ctx, tx, p, meta, "resource.deleted", id, map[string]string{"name": r.Name})
	})
}

// Restore brings back a resource deleted less than RestoreWindow ago;
// admins and owners. Later it is not found, as if purged already. It
// counts against the plan again (402 when the plan is full).
func (s *Service) Restore(ctx context.Context, p *tenant.Principal, id uuid.UUID, meta audit.Meta) (*Resource, error) {
	var r *Resource
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleAdmin, func(tx *sqlx.Tx, _ string) error {
		cur, err := s.Store.Get(ctx, postgres.Prepared(tx), p.OrgID, id, true)
		switch {
		case errors.Is(err, ErrNotFound):
			return errNotFound
		case err != nil:
			return err
		case cur.DeletedAt == nil:
			return errNotDeleted
		case !cur.DeletedAt.After(s.now().Add(-RestoreWindow)):
			return errNotFound
		}
		if r, err = s.Store.SetDeleted(ctx, postgres.Prepared(tx), p.OrgID, id, nil); err != nil {
			return err
		}
		if err := record(ctx, tx, p, meta, "resource.restored", id, map[string]string{"name": r.Name}); err != nil {
			return err
		}
		return s.reserve(ctx, tx, p.OrgID)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// PurgeResult is what one PurgeDeleted run did.
type PurgeResult struct {
	Organizations int   `json:"organizations"`
	Purged        int64 `json:"purged"`
}

// PurgeDeleted deletes for good the resources deleted more than
// RestoreWindow ago (by the service's clock), in every organization: per
// organization, in batches, each one tenant transaction that removes the
// resources' files (Files), deletes the rows and audits resource.purged,
// so a resource never goes without its files, nor its files without it.
// It is the resources:purge job; the generic retention purge skips the
// resources table.
func (s *Service) PurgeDeleted(ctx context.Context) (PurgeResult, error) {
	var res PurgeResult
	batch := s.PurgeBatch
	if batch <= 0 {
		batch = 500
	}
	before := s.now().Add(-RestoreWindow)
	after := uuid.Nil
	for {
		orgs, err := s.Store.OrgIDs(ctx, s.DB, after, 1000)
		if err != nil {
			return res, fmt.Errorf("list organizations: %w", err)
		}
		for _, org := range orgs {
			n, err := s.purgeOrg(ctx, org, before, batch)
			res.Purged += n
			if err != nil {
				return res, fmt.Errorf("purge resources of %s: %w", org, err)
			}
			res.Organizations++
		}
		if len(orgs) < 1000 {
			return res, nil
		}
		after = orgs[len(orgs)-1]
	}
}

func (s *Service) purgeOrg(ctx context.Context, orgID uuid.UUID, before time.Time, batch int) (int64, error) {
	var total int64
	for {
		var n int
		err := postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
			ids, err := s.Store.Purgeable(ctx, tx, orgID, before, batch)
			if err != nil || len(ids) == 0 {
				return err
			}
			n = len(ids)
			if s.Files != nil {
				if err := s.Files.RemoveForResources(ctx, tx, orgID, ids); err != nil {
					return fmt.Errorf("remove files: %w", err)
				}
			}
			if _, err := s.Store.Purge(ctx, tx, orgID, ids); err != nil {
				return err
			}
			for _, id := range ids {
				if err := audit.Record(ctx, tx, audit.Entry{OrgID: orgID, Action: "resource.purged", TargetType: "resource", TargetID: id.String()}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += int64(n)
		if n < batch {
			return total, nil
		}
	}
}

// reserve counts one more live resource against the plan, or refuses with
// plan_limit_reached.
func (s *Service) reserve(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID) error {
	if s.Limits == nil {
		return nil
	}
	return s.Limits.Reserve(ctx, postgres.Prepared(tx), orgID, plan.Resources, 1)
}
