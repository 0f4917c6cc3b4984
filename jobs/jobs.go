// Package jobs holds the handlers the worker runs, their registration and
// the scheduler's periodic table. Task types, payloads, constructors and
// specs live in jobs/task, which every binary and the domain services
// import; handlers here call the domain, so a handler may call a service
// that enqueues without an import cycle.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/internal/resource"
	"github.com/keelhq/keel/internal/resource/resourcedb"
	"github.com/keelhq/keel/internal/retention"
	"github.com/keelhq/keel/jobs/task"
)

// Deps is what the handlers need.
type Deps struct {
	DB *sqlx.DB
	// Orgs serves the handlers that need organizations; nil builds one on
	// DB (orgdb's store) with Render's BaseURL, which is what the worker
	// runs. Invitation links start with its BaseURL.
	Orgs *org.Service
	// Accounts mints verification and reset links; nil builds one on DB
	// (authdb's store) with Render's BaseURL, which is what the worker runs.
	Accounts *auth.Service
	Mail     email.Sender
	Render   *email.Renderer

	// Queue enqueues directly; outbox:sweep relays with it.
	Queue outbox.Enqueuer
	// Confirm, when set, is the relay's replica fence; outbox:sweep marks
	// rows only as the relay does (REDIS_MIN_REPLICA_ACKS).
	Confirm outbox.Confirmer
	// Archive is Asynq's inspector; dead:sync reads its archive.
	Archive ArchiveReader
	// Backup checks restores; when its SourceURL is empty, backup:verify
	// fails with a message naming BACKUP_DATABASE_URL.
	Backup *backup.Verifier
	// BackupTake stores dumps; when it has no source or bucket, backup:take
	// fails with a message naming the variables to set.
	BackupTake *backup.Taker
	// Resources purges deleted resources (resources:purge); nil builds one on
	// DB (resourcedb's store) with no files to remove. The worker sets its
	// Files so a purged resource's files go with it.
	Resources *resource.Service
	// Retention of purged rows; zero fields take retention.Default's.
	Retention retention.Policy
	// Files processes uploads and deletes their objects; nil makes the
	// file tasks fail saying so.
	Files *file.Service
	// Billing applies Stripe events and runs trials, dunning and
	// reconciliation; nil makes the billing tasks fail saying so.
	Billing *billing.Service
	// JobObserved, when set, is told how each periodic job run ended.
	JobObserved JobObserver
	Log         zerolog.Logger
}

// Register adds every handler to mux, each behind its type's tenancy check
// (see tenancy). It fails when a dependency a handler needs is missing, or a
// handled type has no Spec, so a misconfigured worker stops at start, not at
// its first task.
func Register(mux *asynq.ServeMux, d Deps) error {
	if d.DB == nil || d.Mail == nil || d.Render == nil {
		return errors.New("jobs: Register needs DB, Mail and Render")
	}
	orgs := d.Orgs
	if orgs == nil {
		orgs = &org.Service{DB: d.DB, Store: orgdb.Store{}, BaseURL: d.Render.BaseURL}
	}
	accounts := d.Accounts
	if accounts == nil {
		accounts = &auth.Service{DB: d.DB, Users: authdb.Store{}, BaseURL: d.Render.BaseURL}
	}
	mail := &EmailSendHandler{DB: d.DB, Mail: d.Mail, Render: d.Render, Invitations: orgs, Accounts: accounts}
	handlers := map[string]asynq.Handler{
		task.TypeEmailSend:    mail,
		task.TypeEmailAccount: mail,
	}
	registerFleet(handlers, d)
	resources := d.Resources
	if resources == nil {
		resources = &resource.Service{DB: d.DB, Store: resourcedb.Store{}}
		if d.Files != nil {
			resources.Files = d.Files
		}
	}
	handlers[task.TypeResourcesPurge] = &periodic{db: d.DB, observe: d.JobObserved, run: (&resourcesPurge{resources: resources}).run}
	registerFiles(handlers, d)
	registerBilling(handlers, d)
	for typ, h := range handlers {
		spec, ok := task.Lookup(typ)
		if !ok {
			return fmt.Errorf("jobs: handler for %q, which has no Spec in jobs/task", typ)
		}
		mux.Handle(typ, tenancy(spec, h))
	}
	return nil
}

// tenancy resolves the organization a task acts for from its org_id header,
// once for every type, before its handler runs: a tenant task gets its
// organization on the context (queue.OrgID), which handlers pass to
// postgres.InTx so Row Level Security scopes them; a platform task gets
// none. A tenant task without a valid org_id, or a platform task with one,
// is refused for good (asynq.SkipRetry): it becomes a dead task through the
// worker's final-failure path, and its handler never runs.
func tenancy(s task.Spec, h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		org, err := s.OrgOf(t.Headers())
		if err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return h.ProcessTask(queue.WithOrgID(ctx, org), t)
	})
}

// decode unmarshals a payload strictly; a payload that cannot decode will
// never succeed, so it skips retries.
func decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("decode %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}

// taskID returns the running task's ID, which is the outbox row ID for
// relayed tasks.
func taskID(ctx context.Context) string {
	id, _ := asynq.GetTaskID(ctx)
	return id
}
