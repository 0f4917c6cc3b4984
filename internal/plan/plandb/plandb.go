// Package plandb keeps the usage counters that plan limits are checked
// against (usage_counters and usage_deltas, under the tenant's Row Level
// Security).
package plandb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Store is the usage counters' store; its methods run on the tenant
// transaction they are given.
//
// A counter is its usage_counters row plus its usage_deltas rows. A write
// without a limit to check (the plan sets none, or it releases usage)
// adds a delta row under a shared advisory lock on the counter, so one
// organization's writes run side by side instead of queuing on the
// counter's row lock until each commits. A write with a limit takes the
// lock exclusively, which waits for every delta in flight, folds the
// deltas into the row and then checks and increments it in one statement:
// 50 concurrent creates against a limit of 10 still leave exactly 10. One
// unchecked write in FoldOneIn folds too, so the deltas stay few.
type Store struct {
	// FoldOneIn is how many unchecked writes fold, on average, for one
	// that does (0: 64; 1: every one). Tests set it to pin the path.
	FoldOneIn int
}

var _ plan.Store = Store{}

const (
	lockShared    = `SELECT pg_advisory_xact_lock_shared(hashtextextended($1::text || '/' || $2::text, 0))`
	lockExclusive = `SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2::text, 0))`
	addDelta      = `INSERT INTO usage_deltas (org_id, metric, delta) VALUES ($1, $2, $3)`
	// fold moves the counter's deltas, and $3, into its row; under
	// lockExclusive, so its snapshot (taken after the lock) holds every
	// committed delta and no other is in flight.
	fold = `WITH d AS (DELETE FROM usage_deltas WHERE org_id = $1 AND metric = $2 RETURNING delta),
		n AS (SELECT COALESCE(sum(delta), 0) + $3::bigint AS n FROM d)
		INSERT INTO usage_counters (org_id, metric, value) SELECT $1::uuid, $2::text, GREATEST(n, 0) FROM n WHERE n <> 0
		ON CONFLICT (org_id, metric) DO UPDATE SET value = GREATEST(usage_counters.value + (SELECT n FROM n), 0), updated_at = now()`
	// addWithin adds $3 to the counter when the sum stays within $4 and
	// returns the new value; when it would not, it returns no row and
	// changes nothing. Under lockExclusive, after a fold.
	addWithin = `INSERT INTO usage_counters (org_id, metric, value) SELECT $1::uuid, $2::text, $3::bigint WHERE $3::bigint <= $4::bigint
		ON CONFLICT (org_id, metric) DO UPDATE SET value = usage_counters.value + EXCLUDED.value, updated_at = now()
		WHERE usage_counters.value + EXCLUDED.value <= $4::bigint
		RETURNING value`
	// addWithinOrFail is addWithin for a one-message write, which cannot
	// answer false: past the limit, keel_assume fails the whole message.
	addWithinOrFail = `WITH a AS (` + addWithin + `) SELECT keel_assume(EXISTS (SELECT 1 FROM a), 'limit')`
)

func (s Store) foldNow() bool {
	n := s.FoldOneIn
	if n <= 0 {
		n = 64
	}
	return n == 1 || rand.IntN(n) == 0
}

// unchecked adds delta (which may be negative) to orgID's counter of m
// with no limit to keep.
func (s Store) unchecked(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m plan.Metric, delta int64) error {
	return postgres.ExecAll(ctx, tx, s.uncheckedStmts(orgID, m, delta)...)
}

// uncheckedStmts are unchecked's statements: a delta under the shared
// lock, or, one time in FoldOneIn, a fold under the exclusive one.
func (s Store) uncheckedStmts(orgID uuid.UUID, m plan.Metric, delta int64) []postgres.Stmt {
	if s.foldNow() {
		return []postgres.Stmt{{Query: lockExclusive, Args: []any{orgID, string(m)}},
			{Query: fold, Args: []any{orgID, string(m), delta}}}
	}
	return []postgres.Stmt{{Query: lockShared, Args: []any{orgID, string(m)}},
		{Query: addDelta, Args: []any{orgID, string(m), delta}}}
}

// Add implements plan.Store. Without a limit it adds a delta (or folds)
// and returns -1 for the value, which it did not read. With one, after
// the fold, the upsert's conditional DO UPDATE both checks the limit and
// increments under the row's lock; when the limit refuses it, the row is
// still locked (FOR UPDATE) before it is read back, so the value returned
// is the one later writers see.
func (s Store) Add(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m plan.Metric, delta, limit int64) (int64, bool, error) {
	if limit < 0 { // plan.Unlimited
		if err := s.unchecked(ctx, tx, orgID, m, delta); err != nil {
			return 0, false, fmt.Errorf("add usage: %w", err)
		}
		return -1, true, nil
	}
	if err := postgres.ExecAll(ctx, tx, postgres.Stmt{Query: lockExclusive, Args: []any{orgID, string(m)}},
		postgres.Stmt{Query: fold, Args: []any{orgID, string(m), int64(0)}}); err != nil {
		return 0, false, fmt.Errorf("add usage: %w", err)
	}
	var v int64
	err := sqlx.GetContext(ctx, tx, &v, addWithin, orgID, string(m), delta, limit)
	if err == nil {
		return v, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("add usage: %w", err)
	}
	v, err = s.Lock(ctx, tx, orgID, m)
	return v, false, err
}

// AddStmts implements plan.Store: Add's statements, in order, for a
// one-message write. Past the limit they fail the message (SQLSTATE
// KL409) instead of answering false; the writer then runs Add in a
// transaction for the exact answer.
func (s Store) AddStmts(orgID uuid.UUID, m plan.Metric, delta, limit int64) []postgres.Stmt {
	if limit < 0 { // plan.Unlimited
		return s.uncheckedStmts(orgID, m, delta)
	}
	return []postgres.Stmt{{Query: lockExclusive, Args: []any{orgID, string(m)}},
		{Query: fold, Args: []any{orgID, string(m), int64(0)}},
		{Query: addWithinOrFail, Args: []any{orgID, string(m), delta, limit}}}
}

// Sub implements plan.Store: a delta, as for a write without a limit.
func (s Store) Sub(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m plan.Metric, delta int64) error {
	if err := s.unchecked(ctx, tx, orgID, m, -delta); err != nil {
		return fmt.Errorf("sub usage: %w", err)
	}
	return nil
}

// Lock implements plan.Store. It is for seats, counted live, and for Add's
// refusal after its fold: neither has deltas pending.
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

// All implements plan.Store: each counter with its pending deltas.
func (Store) All(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID) (map[plan.Metric]int64, error) {
	const q = `SELECT metric, GREATEST(sum(v), 0)::bigint AS value FROM (
		SELECT metric, value AS v FROM usage_counters WHERE org_id = $1
		UNION ALL SELECT metric, delta FROM usage_deltas WHERE org_id = $1) u GROUP BY metric`
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
	return &plan.Limiter{Plans: billing.NewResolver(billingdb.Store{}, c), Store: Store{}}
}
