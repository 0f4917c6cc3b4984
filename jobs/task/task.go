// Package task defines Keel's task types: their names, payloads and
// constructors, and the Spec of each (queue, retries, timeout, uniqueness,
// tenancy). It is a leaf: api, worker, scheduler, keelctl and the domain
// services that enqueue import it, and it imports no domain package, so a
// service can enqueue a task whose handler (package jobs) calls that service.
package task

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/outbox"
)

// Queue names, in priority order.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
)

// Queues lists the queue names in priority order. Callers must not modify it.
var Queues = []string{QueueCritical, QueueDefault, QueueLow}

// Tenancy says whom a task type acts for. Its zero value is no tenancy at
// all: every Spec must declare one, and the package's tests refuse a Spec
// that does not.
type Tenancy uint8

// The tenancies.
const (
	// Tenant: the task acts for one organization. It carries the org_id
	// header from the moment it is written to the outbox, and the worker
	// runs it in that organization's Row Level Security transaction and
	// counts it against that organization's concurrency cap.
	Tenant Tenancy = iota + 1
	// Platform: the task acts for no organization (maintenance, probes,
	// account mail). It must not carry an org_id header; it sees no tenant
	// rows unless it sets a tenant itself, as the purges do per organization.
	Platform
)

func (t Tenancy) String() string {
	switch t {
	case Tenant:
		return "tenant"
	case Platform:
		return "platform"
	}
	return fmt.Sprintf("Tenancy(%d)", uint8(t))
}

// ErrTenancy is wrapped by every error about a task's organization: a
// tenant task without a valid org_id, or a platform task with one.
var ErrTenancy = errors.New("task tenancy")

// Spec is what a task type declares about how it runs: whom it acts for,
// its queue, how many times it is retried, how long one attempt may take,
// and whether Asynq refuses a second identical task while one is pending.
type Spec struct {
	Type    string
	Tenancy Tenancy
	Queue   string
	// MaxRetry and Timeout replace Asynq's defaults (25 retries over ~20
	// days, a 30-minute timeout), which no Keel task wants.
	MaxRetry int
	Timeout  time.Duration
	// Unique, when positive, is the TTL of Asynq's uniqueness lock on
	// (type, payload, queue); zero means not unique.
	Unique time.Duration
}

// specs lists every task type. A type missing here cannot be built or
// registered, so a new task type must decide its tenancy, retries and
// timeout instead of inheriting defaults.
var specs = []Spec{
	{Type: TypeEmailSend, Tenancy: Tenant, Queue: QueueDefault, MaxRetry: 10, Timeout: time.Minute},
	{Type: TypeEmailAccount, Tenancy: Platform, Queue: QueueCritical, MaxRetry: 10, Timeout: time.Minute},
	{Type: TypeCanary, Tenancy: Platform, Queue: QueueDefault, MaxRetry: 25, Timeout: 30 * time.Second},
	{Type: TypeOutboxSweep, Tenancy: Platform, Queue: QueueLow, MaxRetry: 2, Timeout: time.Minute, Unique: time.Minute},
	{Type: TypeTokensPurge, Tenancy: Platform, Queue: QueueLow, MaxRetry: 3, Timeout: 10 * time.Minute, Unique: time.Hour},
	{Type: TypeRetentionPurge, Tenancy: Platform, Queue: QueueLow, MaxRetry: 3, Timeout: 30 * time.Minute, Unique: time.Hour},
	{Type: TypeBackupVerify, Tenancy: Platform, Queue: QueueLow, MaxRetry: 2, Timeout: 2 * time.Hour, Unique: 3 * time.Hour},
	{Type: TypeBackupTake, Tenancy: Platform, Queue: QueueLow, MaxRetry: 2, Timeout: 3 * time.Hour, Unique: 4 * time.Hour},
	{Type: TypeDeadSync, Tenancy: Platform, Queue: QueueLow, MaxRetry: 2, Timeout: 5 * time.Minute, Unique: 10 * time.Minute},
	{Type: TypeResourcesPurge, Tenancy: Platform, Queue: QueueLow, MaxRetry: 3, Timeout: 30 * time.Minute, Unique: time.Hour},
	{Type: TypeFileProcess, Tenancy: Tenant, Queue: QueueDefault, MaxRetry: 8, Timeout: 15 * time.Minute},
	{Type: TypeFileDeleteObjects, Tenancy: Tenant, Queue: QueueLow, MaxRetry: 10, Timeout: 10 * time.Minute},
	{Type: TypeFilesCleanupPending, Tenancy: Platform, Queue: QueueLow, MaxRetry: 2, Timeout: 30 * time.Minute, Unique: time.Hour},
	// Asynq's backoff over 12 retries spans about a day and a half: a
	// Stripe event whose application keeps failing is a dead task (and
	// keelctl stripe replay) well within Stripe's own 3 days of retries.
	{Type: TypeStripeEvent, Tenancy: Platform, Queue: QueueCritical, MaxRetry: 12, Timeout: time.Minute},
	{Type: TypeStripeReconcile, Tenancy: Platform, Queue: QueueLow, MaxRetry: 2, Timeout: 30 * time.Minute, Unique: time.Hour},
	{Type: TypeTrialExpire, Tenancy: Platform, Queue: QueueDefault, MaxRetry: 2, Timeout: 15 * time.Minute, Unique: time.Hour},
	{Type: TypeBillingDunning, Tenancy: Platform, Queue: QueueDefault, MaxRetry: 2, Timeout: 15 * time.Minute, Unique: time.Hour},
	{Type: TypeBillingSyncSeats, Tenancy: Tenant, Queue: QueueDefault, MaxRetry: 10, Timeout: time.Minute},
	{Type: TypeBillingChangePlan, Tenancy: Tenant, Queue: QueueCritical, MaxRetry: 10, Timeout: time.Minute},
}

// Specs returns every declared task type.
func Specs() []Spec { return slices.Clone(specs) }

// Lookup returns typ's Spec, or false when typ is not declared.
func Lookup(typ string) (Spec, bool) {
	for _, s := range specs {
		if s.Type == typ {
			return s, true
		}
	}
	return Spec{}, false
}

// SpecOf returns typ's Spec. It panics for an undeclared type: that is a
// programming error that the package's tests catch for every constructor.
func SpecOf(typ string) Spec {
	s, ok := Lookup(typ)
	if !ok {
		panic(fmt.Sprintf("task: type %q has no Spec", typ))
	}
	return s
}

// Outbox builds the outbox task of this type acting for org with payload.
// A tenant type needs an organization and records it in the org_id header;
// a platform type refuses one (pass uuid.Nil).
func (s Spec) Outbox(org uuid.UUID, payload []byte) (outbox.Task, error) {
	switch {
	case s.Tenancy == Tenant && org == uuid.Nil:
		return outbox.Task{}, fmt.Errorf("%s: %w: a tenant task needs an organization", s.Type, ErrTenancy)
	case s.Tenancy == Platform && org != uuid.Nil:
		return outbox.Task{}, fmt.Errorf("%s: %w: a platform task takes no organization (got %s)", s.Type, ErrTenancy, org)
	case s.Tenancy != Tenant && s.Tenancy != Platform:
		return outbox.Task{}, fmt.Errorf("%s: %w: spec declares no tenancy", s.Type, ErrTenancy)
	}
	t := outbox.Task{Type: s.Type, Payload: payload, Queue: s.Queue, MaxRetry: s.MaxRetry, Timeout: s.Timeout, Unique: s.Unique}
	if org != uuid.Nil {
		t.Headers = map[string]string{outbox.HeaderOrgID: org.String()}
	}
	return t, nil
}

// OrgOf checks a task's headers against this type's tenancy and returns the
// organization it acts for: a tenant task must carry a valid, non-nil
// org_id; a platform task must carry none (and gets uuid.Nil). The worker
// refuses a task that fails this, for good: the error wraps ErrTenancy.
func (s Spec) OrgOf(headers map[string]string) (uuid.UUID, error) {
	v, has := headers[outbox.HeaderOrgID]
	switch s.Tenancy {
	case Tenant:
		org, err := uuid.Parse(v)
		if err != nil || org == uuid.Nil {
			return uuid.Nil, fmt.Errorf("%s: %w: tenant task without a valid org_id header (%q)", s.Type, ErrTenancy, v)
		}
		return org, nil
	case Platform:
		if has {
			return uuid.Nil, fmt.Errorf("%s: %w: platform task carries org_id %q", s.Type, ErrTenancy, v)
		}
		return uuid.Nil, nil
	}
	return uuid.Nil, fmt.Errorf("%s: %w: spec declares no tenancy", s.Type, ErrTenancy)
}

// Options are the Asynq options of this type, for enqueueing directly (the
// scheduler) rather than through the outbox. They carry no organization:
// only platform tasks are enqueued this way.
func (s Spec) Options() []asynq.Option {
	opts := []asynq.Option{asynq.Queue(s.Queue), asynq.MaxRetry(s.MaxRetry), asynq.Timeout(s.Timeout)}
	if s.Unique > 0 {
		opts = append(opts, asynq.Unique(s.Unique))
	}
	return opts
}
