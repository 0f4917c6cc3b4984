package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/jobs/task"
)

// errNotStripeEvent is Accept's answer for a body that is not an event.
var errNotStripeEvent = errors.New("billing: not a Stripe event (id, type and created are required)")

// Accept stores a verified Stripe event in the inbox and queues its
// application (a stripe:event outbox row) in one transaction. A duplicate
// (its ID already stored) stores and queues nothing: inserted is false.
// The webhook and reconciliation's backfill both accept through it.
func (s *Service) Accept(ctx context.Context, raw []byte) (inserted bool, err error) {
	var head struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		APIVersion string `json:"api_version"`
		Livemode   bool   `json:"livemode"`
		Created    int64  `json:"created"`
	}
	if err := json.Unmarshal(raw, &head); err != nil || head.ID == "" || head.Type == "" || head.Created <= 0 {
		return false, errNotStripeEvent
	}
	e := &Event{ID: head.ID, Type: head.Type, APIVersion: head.APIVersion, Livemode: head.Livemode,
		Created: time.Unix(head.Created, 0).UTC(), Payload: raw}
	t, err := task.NewStripeEventTask(e.ID)
	if err != nil {
		return false, err
	}
	row, err := outbox.Prepare(ctx, t)
	if err != nil {
		return false, err
	}
	return s.Store.AcceptEvent(ctx, s.DB, e, row)
}

// ApplySnapshot folds a subscription snapshot into orgID's billing state in
// tx (tenant set): when it is newer than what the row holds (Newer), the
// row takes it and its status is settled again. applied is false for a
// stale snapshot, which changes nothing. Events and reconciliation both
// apply through it.
func (s *Service) ApplySnapshot(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, snap Snapshot) (a *Account, applied bool, err error) {
	a, err = s.lockAccount(ctx, tx, orgID)
	if err != nil {
		return nil, false, err
	}
	if !a.Newer(snap) {
		return a, false, nil
	}
	if !a.Take(snap, s.Plans) {
		s.Log.Warn().Str("org_id", orgID.String()).Str("price", snap.PriceID).Str("subscription", snap.ID).
			Msg("billing: subscription price is not in plans.yaml; the organization keeps its plan")
	}
	return a, true, s.Resettle(ctx, tx, a)
}

// lockAccount returns orgID's row locked, creating a fallback row for an
// organization that has none (one from before billing was wired).
func (s *Service) lockAccount(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID) (*Account, error) {
	if _, err := s.Store.CreateAccount(ctx, tx, &Account{OrgID: orgID, Status: Free}); err != nil {
		return nil, err
	}
	return s.Store.Account(ctx, tx, orgID, true)
}

// LockAccount is lockAccount for the jobs and handlers of this package's
// callers: orgID's row, locked until tx ends.
func (s *Service) LockAccount(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID) (*Account, error) {
	return s.lockAccount(ctx, tx, orgID)
}

// Resettle derives a's status again from its facts (the snapshot it holds
// and its subscription's unpaid invoices) and saves it, counting a status
// change in the metrics. a must be locked in tx.
func (s *Service) Resettle(ctx context.Context, tx *sqlx.Tx, a *Account) error {
	var since, paid *time.Time
	if a.SubscriptionID != nil {
		var err error
		if since, paid, err = s.Store.InvoiceFacts(ctx, tx, a.OrgID, *a.SubscriptionID); err != nil {
			return err
		}
	}
	before := a.Status
	a.Settle(s.now(), since, paid, s.Grace())
	if err := s.Store.SaveAccount(ctx, tx, a, s.now()); err != nil {
		return err
	}
	if a.Status != before {
		s.Metrics.StateChanged(a.Status)
	}
	return nil
}

// eachOrg runs fn for each of orgs in that organization's own tenant
// transaction. One organization failing does not stop the others: the
// failures are counted and named in the joined error, and the next run
// tries them again. fn's results count only when its transaction commits,
// so fn returns a func that records them, called after the commit.
func (s *Service) eachOrg(ctx context.Context, orgs []uuid.UUID, what string, fn func(tx *sqlx.Tx, org uuid.UUID) (func(), error)) (failed int, err error) {
	var errs []error
	for _, org := range orgs {
		var record func()
		err := postgres.InTx(ctx, s.DB, org, func(tx *sqlx.Tx) (err error) {
			record, err = fn(tx, org)
			return err
		})
		if err != nil {
			failed++
			errs = append(errs, fmt.Errorf("%s of %s: %w", what, org, err))
			continue
		}
		record()
	}
	return failed, errors.Join(errs...)
}
