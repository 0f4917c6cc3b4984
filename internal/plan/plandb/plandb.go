// Package plandb keeps the usage counters that plan limits are checked
// against (usage_counters, under the tenant's Row Level Security).
package plandb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/plan"
)

// Store is the usage counters' store; its methods run on the tenant
// transaction they are given.
type Store struct{}

var _ plan.Store = Store{}

// Add implements plan.Store. The upsert's conditional DO UPDATE both checks
// the limit and increments under the row's lock; when the limit refuses it,
// the row is still locked (FOR UPDATE) before it is read back, so the value
// returned is the one later writers see.
func (Store) Add(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m plan.Metric, delta, limit int64) (int64, bool, error) {
	const q = `INSERT INTO usage_counters (org_id, metric, value) SELECT $1::uuid, $2::text, $3::bigint WHERE $4::bigint < 0 OR $3::bigint <= $4::bigint
		ON CONFLICT (org_id, metric) DO UPDATE SET value = usage_counters.value + EXCLUDED.value, updated_at = now()
		WHERE $4::bigint < 0 OR usage_counters.value + EXCLUDED.value <= $4::bigint
		RETURNING value`
	var v int64
	err := sqlx.GetContext(ctx, tx, &v, q, orgID, string(m), delta, limit)
	if err == nil {
		return v, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("add usage: %w", err)
	}
	v, err = Store{}.Lock(ctx, tx, orgID, m)
	return v, false, err
}

// Sub implements plan.Store.
func (Store) Sub(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m plan.Metric, delta int64) error {
	const q = `UPDATE usage_counters SET value = GREATEST(value - $3, 0), updated_at = now()
		WHERE org_id = $1 AND metric = $2`
	if _, err := tx.ExecContext(ctx, q, orgID, string(m), delta); err != nil {
		return fmt.Errorf("sub usage: %w", err)
	}
	return nil
}

// Lock implements plan.Store.
func (Store) Lock(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m plan.Metric) (int64, error) {
	const ins = `INSERT INTO usage_counters (org_id, metric, value) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING`
	const sel = `SELECT value FROM usage_counters WHERE org_id = $1 AND metric = $2 FOR UPDATE`
	if _, err := tx.ExecContext(ctx, ins, orgID, string(m)); err != nil {
		return 0, fmt.Errorf("lock usage: %w", err)
	}
	var v int64
	if err := sqlx.GetContext(ctx, tx, &v, sel, orgID, string(m)); err != nil {
		return 0, fmt.Errorf("lock usage: %w", err)
	}
	return v, nil
}

// All implements plan.Store.
func (Store) All(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID) (map[plan.Metric]int64, error) {
	const q = `SELECT metric, value FROM usage_counters WHERE org_id = $1`
	var rows []struct {
		Metric string `db:"metric"`
		Value  int64  `db:"value"`
	}
	if err := sqlx.SelectContext(ctx, tx, &rows, q, orgID); err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	out := make(map[plan.Metric]int64, len(rows))
	for _, r := range rows {
		out[plan.Metric(r.Metric)] = r.Value
	}
	return out, nil
}

// NewLimiter is the limits engine every binary uses: counters in
// usage_counters, and each organization's plan from its billing state
// (billing.Resolver, read in the writing transaction). One constructor, so
// the api, the worker and keelctl never disagree on it.
func NewLimiter(c *plan.Catalog) *plan.Limiter {
	return &plan.Limiter{Plans: billing.Resolver{Store: billingdb.Store{}, Plans: c}, Store: Store{}}
}
