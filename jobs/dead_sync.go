package jobs

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/platform/queue"
)

// ArchiveReader is the part of *asynq.Inspector dead:sync reads.
type ArchiveReader interface {
	Queues() ([]string, error)
	ListArchivedTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
}

// deadSync runs dead:sync. Most dead tasks are recorded by the worker as
// they die; this catches the ones the worker could not record: a task whose
// lease expired on its last attempt (its worker was killed) is archived by
// Asynq's recoverer without passing through any handler.
type deadSync struct {
	archive ArchiveReader
	db      *sqlx.DB // dead_tasks is a platform table
}

// deadSyncPages bounds one run: 10 pages of 100 per queue, newest first.
const deadSyncPages = 10

func (d *deadSync) run(ctx context.Context) (any, error) {
	queues, err := d.archive.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	added := map[string]int{}
	for _, q := range queues {
		for page := 1; page <= deadSyncPages; page++ {
			tasks, err := d.archive.ListArchivedTasks(q, asynq.PageSize(100), asynq.Page(page))
			if err != nil {
				return added, fmt.Errorf("list archived %s: %w", q, err)
			}
			if len(tasks) == 0 {
				break
			}
			ids := make([]string, len(tasks))
			for i, t := range tasks {
				ids[i] = t.ID
			}
			known, err := deadtask.Store{}.Known(ctx, d.db, ids)
			if err != nil {
				return added, err
			}
			for _, t := range tasks {
				if known[t.ID] {
					continue
				}
				err := deadtask.Store{}.Record(ctx, d.db, queue.DeadTask{TaskID: t.ID, Type: t.Type, Queue: t.Queue, Payload: t.Payload,
					Headers: t.Headers, Error: t.LastErr, Retried: t.Retried, MaxRetry: t.MaxRetry})
				if err != nil {
					return added, err
				}
				added[q]++
			}
		}
	}
	return added, nil
}
