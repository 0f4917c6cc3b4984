// Package retention deletes what Keel keeps only for a while: expired
// tokens and idempotency keys (tokens:purge, hourly) and, past their retention, dispatched outbox rows,
// sent-email records, dead tasks, job runs, audit rows, finished Stripe
// events, billing-notice keys and soft-deleted rows
// (retention:purge), except the tables whose capability purges them itself
// (ownPurge). The tables of other capabilities may not exist (yet):
// a rule whose table or columns are missing is skipped and reported as such.
package retention

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// Policy says how long each kind of row is kept.
type Policy struct {
	Outbox      time.Duration // dispatched outbox rows; keep ≥ the relay's Asynq retention
	SentEmails  time.Duration // email handler idempotency records; keep ≥ the longest retry span
	DeadTasks   time.Duration
	JobRuns     time.Duration
	Audit       time.Duration // audit_log rows
	SoftDeleted time.Duration // rows whose deleted_at is older
	// StripeEvents keeps applied or ignored Stripe events (the webhook
	// inbox); pending ones stay until applied. Keep it well above the
	// reconciliation backfill's 3 days, or a purged event is stored again.
	StripeEvents time.Duration
	// BillingNotices keeps the keys of billing emails sent (each is sent
	// once per key while its key is kept).
	BillingNotices time.Duration
	// TokenGrace keeps expired tokens this long after expiry, so a late
	// refresh-token reuse is still recognized as reuse.
	TokenGrace time.Duration
}

// Default is what the worker uses unless configured.
var Default = Policy{
	Outbox: 24 * time.Hour, SentEmails: 30 * 24 * time.Hour, DeadTasks: 90 * 24 * time.Hour,
	JobRuns: 90 * 24 * time.Hour, Audit: 365 * 24 * time.Hour, SoftDeleted: 30 * 24 * time.Hour,
	TokenGrace: 24 * time.Hour, StripeEvents: 90 * 24 * time.Hour, BillingNotices: 400 * 24 * time.Hour,
}

// withDefaults fills each zero (or negative) field from Default.
func (p Policy) withDefaults() Policy {
	def := Default
	for _, f := range []struct{ v, d *time.Duration }{
		{&p.Outbox, &def.Outbox}, {&p.SentEmails, &def.SentEmails}, {&p.DeadTasks, &def.DeadTasks},
		{&p.JobRuns, &def.JobRuns}, {&p.Audit, &def.Audit}, {&p.SoftDeleted, &def.SoftDeleted}, {&p.TokenGrace, &def.TokenGrace},
		{&p.StripeEvents, &def.StripeEvents}, {&p.BillingNotices, &def.BillingNotices},
	} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	return p
}

// Result is one rule's outcome, in the job's detail.
type Result struct {
	Deleted int64  `json:"deleted"`
	Skipped string `json:"skipped,omitempty"`
}

// rule deletes rows of table matching where, whose $1 is an age in
// seconds.
type rule struct {
	name    string // in the job's detail; the table when empty
	table   string
	columns []string // must all exist
	where   string   // uses $1 (interval seconds)
	age     time.Duration
}

// tokenRules are the token tables of the identity capability, and the
// idempotency keys.
func tokenRules(p Policy) []rule {
	const expired = `expires_at < now() - make_interval(secs => $1)`
	return []rule{
		{table: "refresh_tokens", columns: []string{"expires_at"}, where: expired, age: p.TokenGrace},
		{table: "email_tokens", columns: []string{"expires_at"}, where: expired, age: p.TokenGrace},
		{table: "invitations", columns: []string{"expires_at"}, where: expired, age: p.TokenGrace},
		// Idempotency keys and their stored responses, as soon as their
		// 24 hours are over (a key past expiry is already ignored).
		{table: "idempotency_keys", columns: []string{"expires_at"}, where: expired, age: 0},
	}
}

// retentionRules are the fixed tables; soft-deleted tables are found at run time.
func retentionRules(p Policy) []rule {
	const older = ` < now() - make_interval(secs => $1)`
	return []rule{
		{table: "outbox", columns: []string{"dispatched_at"}, where: `dispatched_at` + older, age: p.Outbox},
		{table: "sent_emails", columns: []string{"created_at"}, where: `created_at` + older, age: p.SentEmails},
		{table: "dead_tasks", columns: []string{"died_at"}, where: `died_at` + older, age: p.DeadTasks},
		{table: "job_runs", columns: []string{"started_at"}, where: `started_at` + older, age: p.JobRuns},
		{table: "audit_log", columns: []string{"created_at"}, where: `created_at` + older, age: p.Audit},
		{table: "canary_runs", columns: []string{"last_run_at"}, where: `last_run_at` + older, age: p.JobRuns},
		{table: "stripe_events", columns: []string{"received_at", "status"},
			where: `status IN ('applied', 'ignored') AND received_at` + older, age: p.StripeEvents},
		{table: "billing_notices", columns: []string{"created_at"}, where: `created_at` + older, age: p.BillingNotices},
	}
}

func softDeletedRule(table string, p Policy) rule {
	return rule{name: table + ".deleted_at", table: table, columns: []string{"deleted_at"},
		where: `deleted_at < now() - make_interval(secs => $1)`, age: p.SoftDeleted}
}

// Purger deletes on DB what Policy no longer keeps; zero fields of Policy
// take Default's. Platform tables are purged on the pool; a table under Row
// Level Security one organization at a time, each in a transaction that
// sets the organization as tenant, since the worker's role sees no
// tenant's rows otherwise.
type Purger struct {
	DB     *sqlx.DB
	Policy Policy
}

// Tokens deletes expired tokens (tokens:purge) and reports each table's
// result, by table name.
func (p *Purger) Tokens(ctx context.Context) (map[string]Result, error) {
	return p.run(ctx, tokenRules(p.Policy.withDefaults()))
}

// PastRetention deletes the rows past their retention (retention:purge):
// the fixed tables, and every table with a deleted_at column for its
// soft-deleted rows (named table.deleted_at in the result).
func (p *Purger) PastRetention(ctx context.Context) (map[string]Result, error) {
	pol := p.Policy.withDefaults()
	soft, err := Store{}.SoftDeletedTables(ctx, p.DB)
	if err != nil {
		return nil, fmt.Errorf("find soft-deleted tables: %w", err)
	}
	rules := retentionRules(pol)
	skipped := map[string]Result{}
	for _, t := range soft {
		if why, ok := ownPurge[t]; ok {
			skipped[t+".deleted_at"] = Result{Skipped: why}
			continue
		}
		rules = append(rules, softDeletedRule(t, pol))
	}
	out, err := p.run(ctx, rules)
	for k, v := range skipped {
		out[k] = v
	}
	return out, err
}

// ownPurge names the soft-deleted tables whose rows the generic rule must
// not delete, with the reason: their capability purges them itself, with
// what must go along (a resource's files, in S3 and in files).
var ownPurge = map[string]string{
	"resources": "purged by resources:purge, with their files",
}

func (p *Purger) run(ctx context.Context, rules []rule) (map[string]Result, error) {
	out := map[string]Result{}
	for _, r := range rules {
		key := r.name
		if key == "" {
			key = r.table
		}
		res, err := p.apply(ctx, r)
		out[key] = res
		if err != nil {
			return out, fmt.Errorf("purge %s: %w", r.table, err)
		}
	}
	return out, nil
}

// apply deletes r's rows; the organizations of a table under Row Level
// Security come from `organizations`.
func (p *Purger) apply(ctx context.Context, r rule) (Result, error) {
	var s Store
	exists, err := s.TableExists(ctx, p.DB, r.table)
	if err != nil {
		return Result{}, err
	}
	if !exists {
		return Result{Skipped: "table does not exist"}, nil
	}
	have, err := s.Columns(ctx, p.DB, r.table)
	if err != nil {
		return Result{}, err
	}
	for _, c := range r.columns {
		if !slices.Contains(have, c) {
			return Result{Skipped: "no column " + c}, nil
		}
	}
	rls, err := s.RowSecurity(ctx, p.DB, r.table)
	if err != nil {
		return Result{}, err
	}
	secs := int64(r.age / time.Second)
	if !rls {
		n, err := s.Delete(ctx, p.DB, r.table, r.where, secs)
		if err != nil {
			return Result{}, err
		}
		return Result{Deleted: n}, nil
	}
	if !slices.Contains(have, "org_id") {
		return Result{Skipped: "row level security without org_id"}, nil
	}
	orgs, err := s.OrgIDs(ctx, p.DB)
	if err != nil {
		return Result{Skipped: "row level security and organizations unreadable: " + err.Error()}, nil
	}
	var total int64
	for _, org := range orgs {
		err := postgres.InTx(ctx, p.DB, org, func(tx *sqlx.Tx) error {
			n, err := s.DeleteInOrg(ctx, tx, r.table, r.where, secs, org)
			total += n
			return err
		})
		if err != nil {
			return Result{Deleted: total}, err
		}
	}
	return Result{Deleted: total}, nil
}
