package jobs

import (
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/outbox"
)

// Spec is what a task type declares about how it runs: its queue, how many
// times it is retried, how long one attempt may take, and whether Asynq
// refuses a second identical task while one is pending.
type Spec struct {
	Type     string
	Queue    string
	MaxRetry int
	Timeout  time.Duration
	// Unique, when positive, is the TTL of Asynq's uniqueness lock on
	// (type, payload, queue); zero means not unique.
	Unique time.Duration
}

// specs lists every task type. A type missing here cannot be built, so a
// new task type must decide its retries and timeout instead of inheriting
// Asynq's defaults (25 retries over ~20 days, 30-minute timeout).
var specs = []Spec{
	{Type: TypeEmailSend, Queue: QueueDefault, MaxRetry: 10, Timeout: time.Minute},
	{Type: TypeCanary, Queue: QueueDefault, MaxRetry: 25, Timeout: 30 * time.Second},
	{Type: TypeOutboxSweep, Queue: QueueLow, MaxRetry: 2, Timeout: time.Minute, Unique: time.Minute},
	{Type: TypeTokensPurge, Queue: QueueLow, MaxRetry: 3, Timeout: 10 * time.Minute, Unique: time.Hour},
	{Type: TypeRetentionPurge, Queue: QueueLow, MaxRetry: 3, Timeout: 30 * time.Minute, Unique: time.Hour},
	{Type: TypeBackupVerify, Queue: QueueLow, MaxRetry: 2, Timeout: 2 * time.Hour, Unique: 3 * time.Hour},
	{Type: TypeDeadSync, Queue: QueueLow, MaxRetry: 2, Timeout: 5 * time.Minute, Unique: 10 * time.Minute},
}

// Queues lists the queue names in priority order.
var Queues = []string{QueueCritical, QueueDefault, QueueLow}

// Specs returns every declared task type.
func Specs() []Spec { return slices.Clone(specs) }

// SpecOf returns typ's Spec. It panics for an undeclared type: that is a
// programming error that the package's tests catch for every constructor.
func SpecOf(typ string) Spec {
	for _, s := range specs {
		if s.Type == typ {
			return s
		}
	}
	panic(fmt.Sprintf("jobs: task type %q has no Spec", typ))
}

// Outbox builds the outbox task of this type with payload.
func (s Spec) Outbox(payload []byte) outbox.Task {
	return outbox.Task{Type: s.Type, Payload: payload, Queue: s.Queue, MaxRetry: s.MaxRetry, Timeout: s.Timeout, Unique: s.Unique}
}

// Options are the Asynq options of this type, for enqueueing directly (the
// scheduler) rather than through the outbox.
func (s Spec) Options() []asynq.Option {
	opts := []asynq.Option{asynq.Queue(s.Queue), asynq.MaxRetry(s.MaxRetry), asynq.Timeout(s.Timeout)}
	if s.Unique > 0 {
		opts = append(opts, asynq.Unique(s.Unique))
	}
	return opts
}
