package task

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/outbox"
)

// TypeCanary is the fleet's end-to-end probe: it travels outbox → relay →
// Redis → worker and records its run in canary_runs, keyed by task ID, so an
// operator (or the chaos tests) can prove that every task ran. A platform
// task.
const TypeCanary = "ops:canary"

// CanaryPayload may ask the handler to take some time, to simulate work.
type CanaryPayload struct {
	SleepMS int `json:"sleep_ms,omitempty"`
}

// NewCanaryTask builds an ops:canary outbox task.
func NewCanaryTask(p CanaryPayload) (outbox.Task, error) {
	if p.SleepMS < 0 || p.SleepMS > 60_000 {
		return outbox.Task{}, fmt.Errorf("ops:canary: sleep_ms %d out of 0..60000", p.SleepMS)
	}
	return build(TypeCanary, uuid.Nil, p)
}

// The periodic task types, which the scheduler enqueues (see jobs.Schedule).
// All are platform tasks; a job that touches tenant tables sets each
// organization's tenant itself.
const (
	// TypeOutboxSweep re-dispatches outbox rows that no relay marked within
	// a minute (every worker's relay stopped, or kept failing on them).
	TypeOutboxSweep = "outbox:sweep"
	// TypeDeadSync copies tasks from Asynq's archive into dead_tasks when
	// they are not there yet (a task whose lease expired on its last
	// attempt never passes through a handler).
	TypeDeadSync = "dead:sync"
	// TypeTokensPurge deletes expired verification, reset, invitation and
	// refresh tokens.
	TypeTokensPurge = "tokens:purge"
	// TypeRetentionPurge deletes what is past its retention: dispatched
	// outbox rows, sent-email records, dead tasks, job runs, audit rows and
	// soft-deleted rows.
	TypeRetentionPurge = "retention:purge"
	// TypeBackupVerify restores a dump into a scratch database and checks
	// it: a fresh pg_dump, or the newest dump stored in S3.
	TypeBackupVerify = "backup:verify"
	// TypeBackupTake streams pg_dump -Fc into the backup bucket and then
	// deletes the dumps past retention.
	TypeBackupTake = "backup:take"
)

// PeriodicPayload is what the scheduler puts in every periodic task: the
// slot it fires for.
type PeriodicPayload struct {
	Slot time.Time `json:"slot"`
}

// NewPeriodicTask builds the task typ fires for slot. It panics when typ is
// not a declared platform type: the schedule is a fixed table, checked by
// the jobs package's tests.
func NewPeriodicTask(typ string, slot time.Time) *asynq.Task {
	if s := SpecOf(typ); s.Tenancy != Platform {
		panic(fmt.Sprintf("task: periodic type %q is not a platform task", typ))
	}
	b, _ := json.Marshal(PeriodicPayload{Slot: slot.UTC()})
	return asynq.NewTask(typ, b)
}
