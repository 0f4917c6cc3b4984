package jobs

import (
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/schedule"
	"github.com/keelhq/keel/jobs/task"
)

// Periodic is one row of the schedule table: which task fires when, and
// what happens to slots missed while no scheduler ran. Queue, retries and
// timeout come from the task type's Spec.
type Periodic struct {
	Type   string
	Spec   string // cron, 5 fields, UTC
	Missed schedule.Missed
}

// periodicTable is the scheduler's table. Later capabilities add their rows
// here (trial expiry, reconciliation).
var periodicTable = []Periodic{
	{Type: task.TypeOutboxSweep, Spec: "* * * * *", Missed: schedule.MissedSkip},
	{Type: task.TypeDeadSync, Spec: "*/10 * * * *", Missed: schedule.MissedSkip},
	{Type: task.TypeTokensPurge, Spec: "17 * * * *", Missed: schedule.MissedFireOnce},
	{Type: task.TypeRetentionPurge, Spec: "37 3 * * *", Missed: schedule.MissedFireOnce},
	// The verification follows the take, so it restores the night's dump.
	{Type: task.TypeBackupTake, Spec: "0 3 * * *", Missed: schedule.MissedFireOnce},
	{Type: task.TypeBackupVerify, Spec: "15 4 * * *", Missed: schedule.MissedFireOnce},
	{Type: task.TypeResourcesPurge, Spec: "47 3 * * *", Missed: schedule.MissedFireOnce},
	{Type: task.TypeFilesCleanupPending, Spec: "23 * * * *", Missed: schedule.MissedFireOnce},
	{Type: task.TypeTrialExpire, Spec: "5 * * * *", Missed: schedule.MissedFireOnce},
	{Type: task.TypeBillingDunning, Spec: "35 * * * *", Missed: schedule.MissedFireOnce},
	{Type: task.TypeStripeReconcile, Spec: "45 * * * *", Missed: schedule.MissedFireOnce},
}

// ScheduleOff, as an override's spec, removes the entry.
const ScheduleOff = "off"

// Schedule is the scheduler's periodic table as entries, with overrides
// (task type → cron spec, or ScheduleOff) applied. An override of a type the
// table does not hold is an error.
func Schedule(overrides map[string]string) ([]schedule.Entry, error) {
	out := make([]schedule.Entry, 0, len(periodicTable))
	seen := 0
	for _, p := range periodicTable {
		if spec, ok := overrides[p.Type]; ok {
			seen++
			if spec == ScheduleOff {
				continue
			}
			p.Spec = spec
		}
		out = append(out, entry(p))
	}
	if seen != len(overrides) {
		for typ := range overrides {
			if !slices.ContainsFunc(periodicTable, func(p Periodic) bool { return p.Type == typ }) {
				return nil, fmt.Errorf("schedule: %q is not a periodic task", typ)
			}
		}
	}
	return out, nil
}

func entry(p Periodic) schedule.Entry {
	typ := p.Type
	return schedule.Entry{
		Name:    typ,
		Spec:    p.Spec,
		Task:    func(slot time.Time) *asynq.Task { return task.NewPeriodicTask(typ, slot) },
		Options: task.SpecOf(typ).Options(),
		Missed:  p.Missed,
	}
}
