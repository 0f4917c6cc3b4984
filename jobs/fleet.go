package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/jobrun"
)

// registerFleet adds the worker fleet's own handlers: the canary and the
// periodic maintenance jobs.
func registerFleet(mux *asynq.ServeMux, d Deps) error {
	if d.Queue == nil || d.Archive == nil {
		return errors.New("jobs: Register needs Queue and Archive")
	}
	ret := d.Retention.withDefaults()
	runs := &jobrun.Store{DB: d.DB}
	p := &purger{db: d.DB}
	v := d.Backup
	if v == nil {
		v = &backup.Verifier{}
	}
	mux.Handle(TypeCanary, &CanaryHandler{DB: d.DB})
	for typ, run := range map[string]func(ctx context.Context) (any, error){
		TypeOutboxSweep:    (&outboxSweep{db: d.DB, queue: d.Queue, log: d.Log}).run,
		TypeTokensPurge:    (&tokensPurge{p: p, ret: ret}).run,
		TypeRetentionPurge: (&retentionPurge{p: p, ret: ret}).run,
		TypeBackupVerify:   (&backupVerify{v: v}).run,
		TypeDeadSync:       (&deadSync{archive: d.Archive, dead: &deadtask.Store{DB: d.DB}}).run,
	} {
		mux.Handle(typ, &periodic{runs: runs, observe: d.JobObserved, run: run})
	}
	return nil
}

func (r Retention) withDefaults() Retention {
	def := DefaultRetention
	for _, f := range []struct{ v, d *time.Duration }{
		{&r.Outbox, &def.Outbox}, {&r.SentEmails, &def.SentEmails}, {&r.DeadTasks, &def.DeadTasks},
		{&r.JobRuns, &def.JobRuns}, {&r.Audit, &def.Audit}, {&r.SoftDeleted, &def.SoftDeleted}, {&r.TokenGrace, &def.TokenGrace},
	} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	return r
}
