package config

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// QueueNames are the queues a worker may serve, in priority order.
var QueueNames = []string{"critical", "default", "low"}

// Fleet is the worker fleet's part of the worker configuration.
type Fleet struct {
	// Queues maps each served queue to its weight; a worker serves only
	// these, so ops can run one fleet per queue.
	Queues map[string]int
	// OrgConcurrency caps how many tasks of one organization run at once on
	// this worker.
	OrgConcurrency int
	// PollInterval is how often an idle worker asks Redis for a task; it
	// bounds the pickup latency of a task enqueued to empty queues.
	PollInterval time.Duration
	// RetryBase and RetryMax bound the exponential retry backoff.
	RetryBase time.Duration
	RetryMax  time.Duration
	// BackupDatabaseURL is the role backup:verify dumps as (superuser or
	// BYPASSRLS, with CREATEDB); empty makes backup:verify fail clearly.
	BackupDatabaseURL string
	PgDump            string
	PgRestore         string
	// BackupS3, when its Bucket is set, makes backup:verify restore the
	// newest stored dump instead of a fresh one.
	BackupS3 BackupS3
	// Retention of what retention:purge deletes.
	OutboxRetention      time.Duration
	SentEmailRetention   time.Duration
	DeadTaskRetention    time.Duration
	JobRunRetention      time.Duration
	AuditRetention       time.Duration
	SoftDeletedRetention time.Duration
	// StripeEventRetention and BillingNoticeRetention keep finished Stripe
	// events and sent billing-notice keys.
	StripeEventRetention   time.Duration
	BillingNoticeRetention time.Duration
}

const day = 24 * time.Hour

func loadFleet(l *Loader, concurrency int) Fleet {
	f := Fleet{
		Queues:               parseQueues(l, "WORKER_QUEUES", "critical=6,default=3,low=1"),
		OrgConcurrency:       l.Int("WORKER_ORG_CONCURRENCY", max(1, (concurrency+1)/2), 1, 1000),
		PollInterval:         l.Duration("WORKER_POLL_INTERVAL", 200*time.Millisecond, 10*time.Millisecond),
		RetryBase:            l.Duration("WORKER_RETRY_BASE", 10*time.Second, 10*time.Millisecond),
		RetryMax:             l.Duration("WORKER_RETRY_MAX", 6*time.Hour, time.Second),
		BackupDatabaseURL:    l.URL("BACKUP_DATABASE_URL", "", false, "postgres", "postgresql"),
		PgDump:               l.String("PG_DUMP", "pg_dump"),
		PgRestore:            l.String("PG_RESTORE", "pg_restore"),
		BackupS3:             loadBackupS3(l),
		OutboxRetention:      l.Duration("OUTBOX_RETENTION", day, time.Hour),
		SentEmailRetention:   l.Duration("SENT_EMAIL_RETENTION", 30*day, time.Hour),
		DeadTaskRetention:    l.Duration("DEAD_TASK_RETENTION", 90*day, time.Hour),
		JobRunRetention:      l.Duration("JOB_RUN_RETENTION", 90*day, time.Hour),
		AuditRetention:       l.Duration("AUDIT_RETENTION", 365*day, day),
		SoftDeletedRetention: l.Duration("SOFT_DELETED_RETENTION", 30*day, time.Hour),
		// Above stripe:reconcile's 3-day backfill, or a purged event is
		// fetched and stored again.
		StripeEventRetention:   l.Duration("STRIPE_EVENT_RETENTION", 90*day, 4*day),
		BillingNoticeRetention: l.Duration("BILLING_NOTICE_RETENTION", 400*day, day),
	}
	if f.RetryMax < f.RetryBase {
		l.fail("WORKER_RETRY_MAX", "must be at least WORKER_RETRY_BASE (%s)", f.RetryBase)
	}
	return f
}

// parseQueues reads "name=weight,..." with known names and positive weights.
func parseQueues(l *Loader, key, def string) map[string]int {
	v := l.String(key, def)
	out := map[string]int{}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, weight, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		w, err := strconv.Atoi(strings.TrimSpace(weight))
		switch {
		case !ok || err != nil || w < 1 || w > 100:
			l.fail(key, "must be queue=weight pairs with weights 1..100, such as %q, got %q", def, v)
			return nil
		case !slices.Contains(QueueNames, name):
			l.fail(key, "names unknown queue %q; queues are %s", name, strings.Join(QueueNames, ", "))
			return nil
		case out[name] != 0:
			l.fail(key, "names queue %q twice", name)
			return nil
		}
		out[name] = w
	}
	if len(out) == 0 {
		l.fail(key, "must name at least one queue")
	}
	return out
}

// BackupURL is what `keelctl backup verify` dumps as: BACKUP_DATABASE_URL,
// else DATABASE_OWNER_URL.
func (c *Ctl) BackupURL() (string, error) {
	l := NewLoader(c.l.get)
	u := l.URL("BACKUP_DATABASE_URL", "", false, "postgres", "postgresql")
	if u == "" {
		u = l.URL("DATABASE_OWNER_URL", "", false, "postgres", "postgresql")
	}
	if u == "" && l.Err() == nil {
		l.fail("BACKUP_DATABASE_URL", "is required (or DATABASE_OWNER_URL): a superuser or BYPASSRLS role with CREATEDB")
	}
	return u, l.Err()
}

// Tasks is what `keelctl tasks` and `keelctl jobs` need.
type Tasks struct {
	Postgres
}

// Tasks reads DATABASE_URL.
func (c *Ctl) Tasks() (Tasks, error) {
	l := NewLoader(c.l.get)
	t := Tasks{Postgres: loadPostgres(l)}
	return t, l.Err()
}
