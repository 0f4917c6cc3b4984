package plan_test

import (
	"context"
	"errors"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

func TestEmbeddedCatalog(t *testing.T) {
	c, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultPlan().ID != c.Default || c.FallbackPlan().ID != c.Fallback {
		t.Fatalf("default %q fallback %q not resolved", c.Default, c.Fallback)
	}
	b, ok := c.Get("business")
	if !ok || b.Limits.Resources != plan.Unlimited || b.Limits.Seats != 200 {
		t.Fatalf("business = %+v", b)
	}
}

func TestParseNamesEveryProblem(t *testing.T) {
	_, err := plan.Parse([]byte(`
default: gold
fallback: free
plans:
  - id: free
    name: Free
    limits: {resources: -3}
  - id: free
    name: ""
    trial_days: 400
`))
	if err == nil {
		t.Fatal("invalid file accepted")
	}
	// The limit is a decode error reported alone; fix it and the rest show.
	if !strings.Contains(err.Error(), "whole number") {
		t.Fatalf("err = %v", err)
	}
	_, err = plan.Parse([]byte(`
default: gold
fallback: free
plans:
  - id: free
    name: Free
  - id: free
    name: ""
    trial_days: 400
`))
	for _, want := range []string{`"free" appears twice`, "name: is required", "trial_days: must be 0..365", `default: "gold"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %q", err, want)
		}
	}
	if _, err := plan.Parse([]byte("default: free\nfallback: free\nplans:\n  - id: free\n    name: Free\n    colour: red\n")); err == nil {
		t.Error("unknown field accepted")
	}
}

func fixture(t *testing.T, limit int64) (*postgrestest.DB, *plan.Limiter, uuid.UUID) {
	t.Helper()
	db := postgrestest.New(t)
	org := uuid.New()
	if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'A')`, org); err != nil {
		t.Fatal(err)
	}
	p := plan.Plan{ID: "tiny", Name: "Tiny", Limits: plan.Limits{Resources: limit, StorageBytes: 1000, Seats: 2, APIRequestsPerMinute: plan.Unlimited}}
	return db, &plan.Limiter{Plans: plan.Fixed{Plan: p}, Store: plandb.Store{}}, org
}

// The acceptance test: 50 concurrent reservations against a limit of 10
// leave exactly 10, and the other 40 get plan_limit_reached.
func TestReserveIsRaceFree(t *testing.T) {
	t.Parallel()
	db, l, org := fixture(t, 10)
	ctx := context.Background()
	ok, reached := 0, 0
	for _, err := range concurrently(50, func() error {
		return postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error { return l.Reserve(ctx, tx, org, plan.Resources, 1) })
	}) {
		if e, isApp := apperr.As(err); isApp && e.Code == "plan_limit_reached" {
			reached++
			if e.Limit == nil || e.Limit.Limit != 10 || e.Limit.Usage != 10 || e.Limit.Plan != "tiny" {
				t.Errorf("limit detail = %+v", e.Limit)
			}
		} else if err != nil {
			t.Error(err)
		} else {
			ok++
		}
	}
	var v int64
	if err := db.Owner.Get(&v, postgrestest.UsageSQL, org, "resources"); err != nil {
		t.Fatal(err)
	}
	if ok != 10 || reached != 40 || v != 10 {
		t.Fatalf("ok %d, reached %d, counter %d; want 10, 40, 10", ok, reached, v)
	}
}

func TestReleaseCheckAndUsage(t *testing.T) {
	t.Parallel()
	db, l, org := fixture(t, 10)
	ctx := context.Background()
	in := func(fn func(tx *sqlx.Tx) error) error { return postgres.InTx(ctx, db.App, org, fn) }
	if err := in(func(tx *sqlx.Tx) error { return l.Reserve(ctx, tx, org, plan.StorageBytes, 900) }); err != nil {
		t.Fatal(err)
	}
	// A reservation past the limit changes nothing.
	err := in(func(tx *sqlx.Tx) error { return l.Reserve(ctx, tx, org, plan.StorageBytes, 101) })
	if e, ok := apperr.As(err); !ok || e.Kind != apperr.PaymentRequired || e.Limit.Usage != 900 {
		t.Fatalf("err = %v", err)
	}
	if err := in(func(tx *sqlx.Tx) error { return l.Check(ctx, tx, org, plan.StorageBytes, 100) }); err != nil {
		t.Fatalf("check within the limit: %v", err)
	}
	if err := in(func(tx *sqlx.Tx) error { return l.Check(ctx, tx, org, plan.StorageBytes, 101) }); err == nil {
		t.Fatal("check past the limit passed")
	}
	// Release never goes below zero.
	if err := in(func(tx *sqlx.Tx) error { return l.Release(ctx, tx, org, plan.StorageBytes, 5000) }); err != nil {
		t.Fatal(err)
	}
	var got []plan.Usage
	if err := in(func(tx *sqlx.Tx) error {
		_, u, err := l.Usage(ctx, tx, org, map[plan.Metric]int64{plan.Seats: 1})
		got = u
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := map[plan.Metric][2]int64{plan.Seats: {1, 2}, plan.Resources: {0, 10}, plan.StorageBytes: {0, 1000}, plan.APIRequestsPerMinute: {0, plan.Unlimited}}
	for _, u := range got {
		if w := want[u.Metric]; u.Used != w[0] || u.Limit != w[1] {
			t.Errorf("%s = %d/%d, want %d/%d", u.Metric, u.Used, u.Limit, w[0], w[1])
		}
	}
	// A tenant transaction of another organization sees no counter.
	other := uuid.New()
	if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'B')`, other); err != nil {
		t.Fatal(err)
	}
	if err := postgres.InTx(ctx, db.App, other, func(tx *sqlx.Tx) error {
		all, err := plandb.Store{}.All(ctx, tx, org)
		if err == nil && len(all) != 0 {
			return errors.New("another tenant's counters are visible")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// Admit serializes live counts: of 10 concurrent admissions for the last
// seat, where each writes what it admitted, one wins.
func TestAdmitSerializesLiveCounts(t *testing.T) {
	t.Parallel()
	db, l, org := fixture(t, 10)
	ctx := context.Background()
	if _, err := db.Owner.Exec(`CREATE TABLE seat_probe (org_id uuid NOT NULL, n int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(`GRANT ALL ON seat_probe TO ` + postgres.QuoteIdentifier(postgrestest.AppRole())); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(`INSERT INTO seat_probe VALUES ($1, 1)`, org); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error {
				err := l.Admit(ctx, tx, org, plan.Seats, 1, func() (n int64, err error) {
					err = tx.GetContext(ctx, &n, `SELECT count(*) FROM seat_probe WHERE org_id = $1`, org)
					return
				})
				if err != nil {
					return err
				}
				_, err = tx.ExecContext(ctx, `INSERT INTO seat_probe VALUES ($1, 1)`, org)
				return err
			})
		}()
	}
	wg.Wait()
	var n int
	if err := db.Owner.Get(&n, `SELECT count(*) FROM seat_probe`); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("seats taken = %d, want the limit 2", n)
	}
}

// usage is what the store says orgID uses of m, read as the owner.
// concurrently runs f n times at once and returns their errors.
func concurrently(n int, f func() error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f()
		}()
	}
	wg.Wait()
	return errs
}

func usage(t *testing.T, db *postgrestest.DB, org uuid.UUID, m plan.Metric) (counter, deltas int64) {
	t.Helper()
	if err := db.Owner.QueryRow(`SELECT coalesce((SELECT value FROM usage_counters WHERE org_id = $1 AND metric = $2), 0),
		(SELECT count(*) FROM usage_deltas WHERE org_id = $1 AND metric = $2)`, org, string(m)).Scan(&counter, &deltas); err != nil {
		t.Fatal(err)
	}
	return counter, deltas
}

// open starts a tenant transaction for org that the test ends.
func open(t *testing.T, db *postgrestest.DB, org uuid.UUID) *sqlx.Tx {
	t.Helper()
	tx, err := db.App.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	if err := postgres.SetTenant(context.Background(), tx, org); err != nil {
		t.Fatal(err)
	}
	return tx
}

// Without a limit, reservations do not wait for each other: a second one
// commits while the first is still open (on a counter row lock it would
// wait for the first to end).
func TestUnlimitedReservesDoNotQueue(t *testing.T) {
	t.Parallel()
	db, _, org := fixture(t, plan.Unlimited)
	l := unlimited(math.MaxInt)
	ctx := context.Background()
	first := open(t, db, org)
	if err := l.Reserve(ctx, first, org, plan.Resources, 1); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := postgres.InTx(wait, db.App, org, func(tx *sqlx.Tx) error { return l.Reserve(wait, tx, org, plan.Resources, 1) }); err != nil {
		t.Fatalf("the second reservation, with the first open: %v", err)
	}
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	if c, d := usage(t, db, org, plan.Resources); c != 0 || d != 2 {
		t.Fatalf("counter %d with %d deltas; want 0 with 2", c, d)
	}
	got := 0
	if err := postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error {
		all, err := plandb.Store{}.All(ctx, tx, org)
		got = int(all[plan.Resources])
		return err
	}); err != nil || got != 2 {
		t.Fatalf("usage %d (%v), want 2", got, err)
	}
}

func unlimited(foldOneIn int) *plan.Limiter {
	p := plan.Plan{ID: "big", Name: "Big", Limits: plan.Limits{Resources: plan.Unlimited, StorageBytes: plan.Unlimited, Seats: plan.Unlimited, APIRequestsPerMinute: plan.Unlimited}}
	return &plan.Limiter{Plans: plan.Fixed{Plan: p}, Store: plandb.Store{FoldOneIn: foldOneIn}}
}

// The attacker's sequence for the deltas: an organization on an unlimited
// plan reserves 10 in a transaction still open when its plan drops to a
// limit of 10. A reservation checked against the new limit must wait for
// the open one and then refuse, not count it out and pass.
func TestLimitWaitsForUnlimitedWritesInFlight(t *testing.T) {
	t.Parallel()
	db, limited, org := fixture(t, 10)
	ctx := context.Background()
	first := open(t, db, org)
	if err := unlimited(math.MaxInt).Reserve(ctx, first, org, plan.Resources, 10); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error { return limited.Reserve(ctx, tx, org, plan.Resources, 1) })
	}()
	// The checked reservation waits on the counter's lock.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("the checked reservation never waited on a lock")
		}
		var waiting int
		if err := db.Owner.Get(&waiting, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock'`); err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the checked reservation ended (%v) while an unchecked one was in flight", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if e, ok := apperr.As(err); !ok || e.Code != "plan_limit_reached" || e.Limit.Usage != 10 {
		t.Fatalf("checked reservation after 10 unchecked: %v, want plan_limit_reached at 10", err)
	}
	// Its fold was rolled back with it; the next checked write folds.
	if c, d := usage(t, db, org, plan.Resources); c != 0 || d != 1 {
		t.Fatalf("counter %d with %d deltas; want the delta still pending", c, d)
	}
	if err := postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error { return limited.Release(ctx, tx, org, plan.Resources, 1) }); err != nil {
		t.Fatal(err)
	}
	if err := postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error { return limited.Reserve(ctx, tx, org, plan.Resources, 1) }); err != nil {
		t.Fatalf("reservation after a release: %v", err)
	}
	if c, d := usage(t, db, org, plan.Resources); c != 10 || d != 0 {
		t.Fatalf("counter %d with %d deltas; want 10 folded", c, d)
	}
}

// Whichever path each write takes (a delta, a fold, a checked add), usage
// is the sum of what was reserved and released, never below zero, and the
// deltas do not pile up when every write folds.
func TestFoldKeepsUsage(t *testing.T) {
	t.Parallel()
	for _, foldOneIn := range []int{1, 3, math.MaxInt} {
		db, limited, org := fixture(t, 1000)
		ctx := context.Background()
		free := unlimited(foldOneIn)
		want := int64(0)
		for i := range 60 {
			l, delta := free, int64(i%7+1)
			if i%5 == 0 {
				l = limited
			}
			err := postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error {
				if i%4 == 3 {
					return l.Release(ctx, tx, org, plan.Resources, delta)
				}
				return l.Reserve(ctx, tx, org, plan.Resources, delta)
			})
			if err != nil {
				t.Fatalf("fold one in %d, write %d: %v", foldOneIn, i, err)
			}
			if i%4 == 3 {
				want = max(want-delta, 0)
			} else {
				want += delta
			}
		}
		var got int64
		if err := postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error {
			all, err := plandb.Store{}.All(ctx, tx, org)
			got = all[plan.Resources]
			return err
		}); err != nil {
			t.Fatal(err)
		}
		c, d := usage(t, db, org, plan.Resources)
		if got != want || (foldOneIn == 1 && (d != 0 || c != want)) {
			t.Fatalf("fold one in %d: usage %d (counter %d, %d deltas), want %d", foldOneIn, got, c, d, want)
		}
	}
}

// reserveInMessage sends ReserveStmts' statements as one message in org's
// tenant, as tenant.WriteOnce does after a write, and returns its outcome.
func reserveInMessage(ctx context.Context, db *postgrestest.DB, l *plan.Limiter, org uuid.UUID, delta int64) error {
	stmts, ok, err := l.ReserveStmts(ctx, db.App, org, plan.Resources, delta)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("ReserveStmts: the resolver cannot assume")
	}
	msg, err := postgres.QueryMessage(ctx, db.App, append([]postgres.Stmt{postgres.TenantStmt(org)}, stmts...)...)
	if err != nil {
		return err
	}
	rows := msg.Rows
	for ok := true; ok; ok = rows.NextResultSet() {
		for rows.Next() {
		}
	}
	err = rows.Err()
	msg.Close(err)
	return err
}

// The acceptance test, with the reservation sent as one message: 50
// concurrent messages against a limit of 10 leave exactly 10; the other 40
// fail their guard and change nothing.
func TestReserveStmtsIsRaceFree(t *testing.T) {
	t.Parallel()
	db, l, org := fixture(t, 10)
	ctx := context.Background()
	ok, refused := 0, 0
	for _, err := range concurrently(50, func() error { return reserveInMessage(ctx, db, l, org, 1) }) {
		switch {
		case postgres.IsAssumptionFailed(err):
			refused++
		case err != nil:
			t.Error(err)
		default:
			ok++
		}
	}
	var v int64
	if err := db.Owner.Get(&v, postgrestest.UsageSQL, org, "resources"); err != nil {
		t.Fatal(err)
	}
	if ok != 10 || refused != 40 || v != 10 {
		t.Fatalf("ok %d, refused %d, usage %d; want 10, 40, 10", ok, refused, v)
	}
	// The transaction the writer falls back to answers exactly.
	err := postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error { return l.Reserve(ctx, tx, org, plan.Resources, 1) })
	if e, isApp := apperr.As(err); !isApp || e.Code != "plan_limit_reached" || e.Limit.Usage != 10 {
		t.Fatalf("Reserve after the refused messages: %v", err)
	}
	// Unlimited, the message adds a delta (or folds) and waits for no one.
	big := unlimited(3)
	for range 20 {
		if err := reserveInMessage(ctx, db, big, org, 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Owner.Get(&v, postgrestest.UsageSQL, org, "resources"); err != nil || v != 50 {
		t.Fatalf("usage %d (%v) after 20 unlimited reservations of 2; want 50", v, err)
	}
}

// The attacker's sequence for a plan assumed by one-message writes: an
// organization on an unlimited plan writes (the resolver keeps that plan),
// then drops to a plan whose limit it already reaches. Its next message
// must fail the plan's guard, not reserve as unlimited; after Forget the
// resolver reads the new plan, and the message fails the limit's guard.
func TestReserveStmtsFollowPlanChanges(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	org := uuid.New()
	if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'A')`, org); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(`INSERT INTO subscriptions (org_id, plan_id, status) VALUES ($1, 'big', 'active')`, org); err != nil {
		t.Fatal(err)
	}
	cat, err := plan.Parse([]byte(`default: free
fallback: free
plans:
  - id: free
    name: Free
    limits: {seats: unlimited, resources: 3, storage_bytes: unlimited, api_requests_per_minute: unlimited}
  - id: big
    name: Big
    limits: {seats: unlimited, resources: unlimited, storage_bytes: unlimited, api_requests_per_minute: unlimited}
  - id: tiny
    name: Tiny
    limits: {seats: unlimited, resources: 10, storage_bytes: unlimited, api_requests_per_minute: unlimited}
`))
	if err != nil {
		t.Fatal(err)
	}
	l := plandb.NewLimiter(cat)
	if err := reserveInMessage(ctx, db, l, org, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(`UPDATE subscriptions SET plan_id = 'tiny' WHERE org_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	if err := reserveInMessage(ctx, db, l, org, 1); !postgres.IsAssumptionFailed(err) {
		t.Fatalf("message on the kept plan after a plan change: %v, want its guard to fail", err)
	}
	// Without Forget the kept plan keeps failing, never passing.
	if err := reserveInMessage(ctx, db, l, org, 1); !postgres.IsAssumptionFailed(err) {
		t.Fatalf("second message on the kept plan: %v", err)
	}
	l.Forget(org)
	if err := reserveInMessage(ctx, db, l, org, 1); !postgres.IsAssumptionFailed(err) {
		t.Fatalf("message on the new plan at its limit: %v, want the limit's guard to fail", err)
	}
	// An organization without a subscriptions row is on the fallback plan,
	// and its guard holds until a row appears.
	other := uuid.New()
	if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'B')`, other); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := reserveInMessage(ctx, db, l, other, 1); err != nil {
			t.Fatalf("fallback plan within its limit: %v", err)
		}
	}
	if err := reserveInMessage(ctx, db, l, other, 1); !postgres.IsAssumptionFailed(err) {
		t.Fatalf("fallback plan past its limit of 3: %v", err)
	}
	if _, err := db.Owner.Exec(`INSERT INTO subscriptions (org_id, plan_id, status) VALUES ($1, 'big', 'active')`, other); err != nil {
		t.Fatal(err)
	}
	if err := reserveInMessage(ctx, db, l, other, 1); !postgres.IsAssumptionFailed(err) {
		t.Fatalf("message assuming no row after the row appeared: %v", err)
	}
	l.Forget(other)
	if err := reserveInMessage(ctx, db, l, other, 1); err != nil {
		t.Fatalf("message on the new unlimited plan: %v", err)
	}
	var used int64
	if err := db.Owner.Get(&used, postgrestest.UsageSQL, org, "resources"); err != nil || used != 10 {
		t.Fatalf("usage %d (%v), want the 10 reserved before the change", used, err)
	}
}
