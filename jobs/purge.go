package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// Retention says how long each kind of row is kept.
type Retention struct {
	Outbox      time.Duration // dispatched outbox rows; keep ≥ the relay's Asynq retention
	SentEmails  time.Duration // email handler idempotency records; keep ≥ the longest retry span
	DeadTasks   time.Duration
	JobRuns     time.Duration
	Audit       time.Duration // audit_log rows
	SoftDeleted time.Duration // rows whose deleted_at is older
	// TokenGrace keeps expired tokens this long after expiry, so a late
	// refresh-token reuse is still recognized as reuse.
	TokenGrace time.Duration
}

// DefaultRetention is what the worker uses unless configured.
var DefaultRetention = Retention{
	Outbox: 24 * time.Hour, SentEmails: 30 * 24 * time.Hour, DeadTasks: 90 * 24 * time.Hour,
	JobRuns: 90 * 24 * time.Hour, Audit: 365 * 24 * time.Hour, SoftDeleted: 30 * 24 * time.Hour,
	TokenGrace: 24 * time.Hour,
}

// purgeRule deletes rows of table matching where, whose $1 is an age. The
// tables of other capabilities may not exist (yet): a rule whose table or
// columns are missing is skipped and reported as such.
type purgeRule struct {
	name    string // in the job's detail; the table when empty
	table   string
	columns []string // must all exist
	where   string   // uses $1 (interval seconds)
	age     time.Duration
}

type purger struct {
	db *sqlx.DB
}

// purgeResult is one rule's outcome in the job's detail.
type purgeResult struct {
	Deleted int64  `json:"deleted"`
	Skipped string `json:"skipped,omitempty"`
}

func (p *purger) runRules(ctx context.Context, rules []purgeRule) (map[string]purgeResult, error) {
	out := map[string]purgeResult{}
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

// apply deletes r's rows. A table under Row Level Security is purged one
// organization at a time with app.org_id set, since the worker's role sees
// no tenant's rows otherwise; the organizations come from `organizations`.
func (p *purger) apply(ctx context.Context, r purgeRule) (purgeResult, error) {
	var reg sql.NullString
	if err := p.db.GetContext(ctx, &reg, `SELECT to_regclass($1)::text`, r.table); err != nil {
		return purgeResult{}, err
	}
	if !reg.Valid {
		return purgeResult{Skipped: "table does not exist"}, nil
	}
	var have []string
	if err := p.db.SelectContext(ctx, &have, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1`, r.table); err != nil {
		return purgeResult{}, err
	}
	for _, c := range r.columns {
		if !contains(have, c) {
			return purgeResult{Skipped: "no column " + c}, nil
		}
	}
	var rls bool
	if err := p.db.GetContext(ctx, &rls, `SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass($1)`, r.table); err != nil {
		return purgeResult{}, err
	}
	q := `DELETE FROM ` + postgres.QuoteIdentifier(r.table) + ` WHERE ` + r.where
	secs := int64(r.age / time.Second)
	if !rls {
		res, err := p.db.ExecContext(ctx, q, secs)
		if err != nil {
			return purgeResult{}, err
		}
		n, _ := res.RowsAffected()
		return purgeResult{Deleted: n}, nil
	}
	if !contains(have, "org_id") {
		return purgeResult{Skipped: "row level security without org_id"}, nil
	}
	orgs, err := p.orgs(ctx)
	if err != nil {
		return purgeResult{Skipped: "row level security and organizations unreadable: " + err.Error()}, nil
	}
	var total int64
	for _, org := range orgs {
		err := postgres.InTx(ctx, p.db, org, func(tx *sqlx.Tx) error {
			res, err := tx.ExecContext(ctx, q+` AND org_id = $2`, secs, org)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			total += n
			return nil
		})
		if err != nil {
			return purgeResult{Deleted: total}, err
		}
	}
	return purgeResult{Deleted: total}, nil
}

func (p *purger) orgs(ctx context.Context) ([]uuid.UUID, error) {
	var reg sql.NullString
	if err := p.db.GetContext(ctx, &reg, `SELECT to_regclass('organizations')::text`); err != nil {
		return nil, err
	}
	if !reg.Valid {
		return nil, fmt.Errorf("no organizations table")
	}
	var ids []uuid.UUID
	err := p.db.SelectContext(ctx, &ids, `SELECT id FROM organizations`)
	return ids, err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// tokenRules are the token tables of the identity capability.
func tokenRules(ret Retention) []purgeRule {
	const expired = `expires_at < now() - make_interval(secs => $1)`
	return []purgeRule{
		{table: "refresh_tokens", columns: []string{"expires_at"}, where: expired, age: ret.TokenGrace},
		{table: "email_tokens", columns: []string{"expires_at"}, where: expired, age: ret.TokenGrace},
		{table: "invitations", columns: []string{"expires_at"}, where: expired, age: ret.TokenGrace},
	}
}

// retentionRules are the fixed tables; soft-deleted tables are found at run time.
func retentionRules(ret Retention) []purgeRule {
	const older = ` < now() - make_interval(secs => $1)`
	return []purgeRule{
		{table: "outbox", columns: []string{"dispatched_at"}, where: `dispatched_at` + older, age: ret.Outbox},
		{table: "sent_emails", columns: []string{"created_at"}, where: `created_at` + older, age: ret.SentEmails},
		{table: "dead_tasks", columns: []string{"died_at"}, where: `died_at` + older, age: ret.DeadTasks},
		{table: "job_runs", columns: []string{"started_at"}, where: `started_at` + older, age: ret.JobRuns},
		{table: "audit_log", columns: []string{"created_at"}, where: `created_at` + older, age: ret.Audit},
		{table: "canary_runs", columns: []string{"last_run_at"}, where: `last_run_at` + older, age: ret.JobRuns},
	}
}

func (p *purger) softDeletedRules(ctx context.Context, ret Retention) ([]purgeRule, error) {
	var tables []string
	err := p.db.SelectContext(ctx, &tables, `SELECT c.table_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND c.column_name = 'deleted_at' AND t.table_type = 'BASE TABLE'
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("find soft-deleted tables: %w", err)
	}
	rules := make([]purgeRule, 0, len(tables))
	for _, t := range tables {
		rules = append(rules, purgeRule{name: t + ".deleted_at", table: t, columns: []string{"deleted_at"},
			where: `deleted_at < now() - make_interval(secs => $1)`, age: ret.SoftDeleted})
	}
	return rules, nil
}

type tokensPurge struct {
	p   *purger
	ret Retention
}

func (t *tokensPurge) run(ctx context.Context) (any, error) {
	return t.p.runRules(ctx, tokenRules(t.ret))
}

type retentionPurge struct {
	p   *purger
	ret Retention
}

func (r *retentionPurge) run(ctx context.Context) (any, error) {
	soft, err := r.p.softDeletedRules(ctx, r.ret)
	if err != nil {
		return nil, err
	}
	return r.p.runRules(ctx, append(retentionRules(r.ret), soft...))
}
