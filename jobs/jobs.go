// Package jobs defines Keel's task types, their payloads and constructors,
// the handlers the worker runs, and the scheduler's periodic table. api,
// worker and scheduler all import it, so a task's shape lives in one place.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/outbox"
)

// Queue names, in priority order.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
)

// Deps is what the handlers need.
type Deps struct {
	DB     *sqlx.DB
	Mail   email.Sender
	Render *email.Renderer

	// Queue enqueues directly; outbox:sweep relays with it.
	Queue outbox.Enqueuer
	// Archive is Asynq's inspector; dead:sync reads its archive.
	Archive ArchiveReader
	// Backup checks restores; when its SourceURL is empty, backup:verify
	// fails with a message naming BACKUP_DATABASE_URL.
	Backup *backup.Verifier
	// Retention of purged rows; zero fields take DefaultRetention's.
	Retention Retention
	// JobObserved, when set, is told how each periodic job run ended.
	JobObserved JobObserver
	Log         zerolog.Logger
}

// Register adds every handler to mux. It fails when a dependency a handler
// needs is missing, so a misconfigured worker stops at start, not at its
// first task.
func Register(mux *asynq.ServeMux, d Deps) error {
	if d.DB == nil || d.Mail == nil || d.Render == nil {
		return errors.New("jobs: Register needs DB, Mail and Render")
	}
	mux.Handle(TypeEmailSend, &EmailSendHandler{DB: d.DB, Mail: d.Mail, Render: d.Render})
	if err := registerFleet(mux, d); err != nil {
		return err
	}
	return nil
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
