package plan

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Resolver says which plan an organization is on: billing.Resolver, from
// the organization's billing state; Fixed in tests of the engine itself.
type Resolver interface {
	// PlanOf returns orgID's plan, read in tx (the tenant's transaction).
	PlanOf(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID) (Plan, error)
}

// Assumer is a Resolver that can also answer for a one-message write
// (tenant.WriteOnce), which cannot read the plan and then decide: Assume
// reads orgID's plan on q, outside the write, and returns with it a
// keel_assume guard (nil when the plan cannot change) that fails unless
// the plan still reads the same. The write runs the guard after its rows,
// whose billing check holds the organization's billing lock until commit,
// so a plan change either committed before the guard (which then fails)
// or waits for the write.
type Assumer interface {
	Assume(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) (Plan, *postgres.Stmt, error)
	// Forget drops what Assume keeps of orgID, after a write whose
	// guards failed.
	Forget(orgID uuid.UUID)
}

// Fixed puts every organization on one plan.
type Fixed struct{ Plan Plan }

var _ Assumer = Fixed{}

// PlanOf returns f.Plan.
func (f Fixed) PlanOf(context.Context, sqlx.QueryerContext, uuid.UUID) (Plan, error) {
	return f.Plan, nil
}

// Assume implements Assumer: the plan never changes.
func (f Fixed) Assume(context.Context, sqlx.QueryerContext, uuid.UUID) (Plan, *postgres.Stmt, error) {
	return f.Plan, nil, nil
}

// Forget implements Assumer.
func (Fixed) Forget(uuid.UUID) {}

// Store keeps the usage counters (usage_counters, under the tenant's RLS).
type Store interface {
	// Add adds delta to orgID's counter of m when the sum stays within
	// limit (Unlimited: always), and returns true; when it would not, it
	// changes nothing and returns the current value and false. With a
	// limit, the counter stays locked until tx ends, so concurrent Adds
	// for one organization and metric run one after the other, and after
	// every Add without one that is still in flight; Adds without a limit
	// do not wait for each other.
	Add(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m Metric, delta, limit int64) (int64, bool, error)
	// Sub takes delta off orgID's counter of m (usage reads never below
	// zero); it waits for no other writer.
	Sub(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m Metric, delta int64) error
	// Lock locks orgID's counter row of m until tx ends, creating it, and
	// returns its value: for metrics counted live (seats), it serializes
	// the count and the write that follows it.
	Lock(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m Metric) (int64, error)
	// All returns orgID's counters; a metric never counted is absent.
	All(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID) (map[Metric]int64, error)
	// AddStmts are Add's statements for a one-message write: the same
	// locks and writes, and, under a limit, a keel_assume guard that
	// fails the whole message instead of answering false when the sum
	// would pass it.
	AddStmts(orgID uuid.UUID, m Metric, delta, limit int64) []postgres.Stmt
}

// Limiter is the limits engine: services call it inside their tenant
// transaction, beside the write that adds usage.
type Limiter struct {
	Plans Resolver
	Store Store
}

// Reached is the error of a write that would pass a limit: 402
// plan_limit_reached with the metric, limit, usage and plan.
func Reached(p Plan, m Metric, limit, usage int64) error {
	return &apperr.Error{Kind: apperr.PaymentRequired, Code: "plan_limit_reached",
		Message: fmt.Sprintf("Your %s plan allows %s; this organization uses %s. Upgrade the plan or free some up.",
			p.Name, Describe(m, limit), Describe(m, usage)),
		Limit: &apperr.Limit{Metric: string(m), Limit: limit, Usage: usage, Plan: p.ID}}
}

// Describe writes n of m in words: "10 resources", "100 MiB of storage".
func Describe(m Metric, n int64) string {
	switch m {
	case StorageBytes:
		return bytesString(n) + " of storage"
	case Seats:
		return fmt.Sprintf("%d seats", n)
	case APIRequestsPerMinute:
		return fmt.Sprintf("%d API requests per minute", n)
	}
	return fmt.Sprintf("%d %s", n, m)
}

func bytesString(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f, i = f/1024, i+1
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.4g %s", f, units[i])
}

// Reserve adds delta of m to orgID's usage in tx, or returns Reached when
// that would pass its plan's limit. The check and the increment are one
// statement holding the counter's lock until tx ends, so 50 concurrent
// creates against a limit of 10 leave exactly 10; without a limit, nothing
// is checked and concurrent Reserves do not queue (plandb.Store).
func (l *Limiter) Reserve(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m Metric, delta int64) error {
	p, err := l.Plans.PlanOf(ctx, tx, orgID)
	if err != nil {
		return fmt.Errorf("plan of %s: %w", orgID, err)
	}
	limit := p.Limits.Of(m)
	used, ok, err := l.Store.Add(ctx, tx, orgID, m, delta, limit)
	if err != nil {
		return fmt.Errorf("reserve %s: %w", m, err)
	}
	if !ok {
		return Reached(p, m, limit, used)
	}
	return nil
}

// ReserveStmts returns Reserve's statements for a one-message write
// (tenant.WriteOnce), to follow the write's own: a guard that the plan is
// the one read now on q (outside the write), and the reservation, which
// fails the message instead of answering Reached. ok is false when the
// plan's resolver cannot assume (not an Assumer): the caller then writes
// through a transaction and Reserve. After a failed message, Reserve in
// that transaction answers exactly, Reached included.
func (l *Limiter) ReserveStmts(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, m Metric, delta int64) (stmts []postgres.Stmt, ok bool, err error) {
	a, ok := l.Plans.(Assumer)
	if !ok {
		return nil, false, nil
	}
	p, guard, err := a.Assume(ctx, q, orgID)
	if err != nil {
		return nil, false, fmt.Errorf("plan of %s: %w", orgID, err)
	}
	if guard != nil {
		stmts = append(stmts, *guard)
	}
	return append(stmts, l.Store.AddStmts(orgID, m, delta, p.Limits.Of(m))...), true, nil
}

// Forget tells the plan's resolver that a one-message write with
// ReserveStmts' statements failed a guard: what it assumed of orgID may be
// stale.
func (l *Limiter) Forget(orgID uuid.UUID) {
	if a, ok := l.Plans.(Assumer); ok {
		a.Forget(orgID)
	}
}

// Release takes delta of m off orgID's usage in tx.
func (l *Limiter) Release(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m Metric, delta int64) error {
	if err := l.Store.Sub(ctx, tx, orgID, m, delta); err != nil {
		return fmt.Errorf("release %s: %w", m, err)
	}
	return nil
}

// Admit checks a live-counted metric (seats): it locks orgID's counter of m
// for the rest of tx, asks count for the current usage, and returns Reached
// when adding delta would pass the limit. The caller writes in the same tx,
// so two concurrent admissions cannot both take the last seat.
func (l *Limiter) Admit(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m Metric, delta int64, count func() (int64, error)) error {
	p, err := l.Plans.PlanOf(ctx, tx, orgID)
	if err != nil {
		return fmt.Errorf("plan of %s: %w", orgID, err)
	}
	if _, err := l.Store.Lock(ctx, tx, orgID, m); err != nil {
		return fmt.Errorf("lock %s: %w", m, err)
	}
	used, err := count()
	if err != nil {
		return fmt.Errorf("count %s: %w", m, err)
	}
	if limit := p.Limits.Of(m); limit != Unlimited && used+delta > limit {
		return Reached(p, m, limit, used)
	}
	return nil
}

// Check returns Reached when adding delta of m would pass orgID's limit now,
// without reserving anything: for a pre-flight check (a presigned upload's
// declared size) that a Reserve confirms later.
func (l *Limiter) Check(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, m Metric, delta int64) error {
	p, err := l.Plans.PlanOf(ctx, tx, orgID)
	if err != nil {
		return fmt.Errorf("plan of %s: %w", orgID, err)
	}
	all, err := l.Store.All(ctx, tx, orgID)
	if err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	if limit := p.Limits.Of(m); limit != Unlimited && all[m]+delta > limit {
		return Reached(p, m, limit, all[m])
	}
	return nil
}

// Usage is one metric's use against its limit.
type Usage struct {
	Metric Metric
	Used   int64
	Limit  int64 // Unlimited when the plan sets none
}

// Usage returns orgID's plan and its counted usage of every metric; counts
// supplies the metrics counted live (seats), and API requests per minute is
// reported with its limit and the usage the caller passes in counts.
func (l *Limiter) Usage(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, counts map[Metric]int64) (Plan, []Usage, error) {
	p, err := l.Plans.PlanOf(ctx, tx, orgID)
	if err != nil {
		return Plan{}, nil, fmt.Errorf("plan of %s: %w", orgID, err)
	}
	all, err := l.Store.All(ctx, tx, orgID)
	if err != nil {
		return Plan{}, nil, fmt.Errorf("usage: %w", err)
	}
	out := make([]Usage, 0, len(Metrics))
	for _, m := range Metrics {
		used := all[m]
		if n, ok := counts[m]; ok {
			used = n
		}
		out = append(out, Usage{Metric: m, Used: used, Limit: p.Limits.Of(m)})
	}
	return p, out, nil
}
