package jobs

import (
	"context"
	"errors"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/retention"
	"github.com/keelhq/keel/jobs/task"
)

// registerFleet adds the worker fleet's own handlers to handlers: the
// canary and the periodic maintenance jobs. Queue and Archive are optional
// here so tests of other task types can register with DB, Mail and Render
// alone; the jobs that need them fail with a message saying so (cmd/worker
// always sets them).
func registerFleet(handlers map[string]asynq.Handler, d Deps) {
	purge := &retention.Purger{DB: d.DB, Policy: d.Retention}
	v := d.Backup
	if v == nil {
		v = &backup.Verifier{}
	}
	take := d.BackupTake
	if take == nil {
		take = &backup.Taker{}
	}
	handlers[task.TypeCanary] = &CanaryHandler{DB: d.DB}
	for typ, run := range map[string]func(ctx context.Context) (any, error){
		task.TypeOutboxSweep:    needs(d.Queue != nil, "Queue", (&outboxSweep{db: d.DB, queue: d.Queue, confirm: d.Confirm, log: d.Log}).run),
		task.TypeTokensPurge:    purgeRun(purge.Tokens),
		task.TypeRetentionPurge: purgeRun(purge.PastRetention),
		task.TypeBackupVerify:   (&backupVerify{v: v}).run,
		task.TypeBackupTake:     (&backupTake{t: take}).run,
		task.TypeDeadSync:       needs(d.Archive != nil, "Archive", (&deadSync{archive: d.Archive, db: d.DB}).run),
	} {
		handlers[typ] = &periodic{db: d.DB, observe: d.JobObserved, run: run}
	}
}

// needs returns run, or when ok is false a run that fails naming the
// missing dependency.
func needs(ok bool, dep string, run func(context.Context) (any, error)) func(context.Context) (any, error) {
	if ok {
		return run
	}
	return func(context.Context) (any, error) {
		return nil, errors.New("not configured: jobs.Deps." + dep + " is nil")
	}
}

// purgeRun adapts a purge to a periodic job's run: its results are the
// run's detail, and a purge that could not start records none.
func purgeRun(purge func(context.Context) (map[string]retention.Result, error)) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		res, err := purge(ctx)
		if res == nil {
			return nil, err
		}
		return res, err
	}
}
