package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/jobs/task"
)

// registerFiles adds the file handlers. Without Deps.Files they fail
// saying so (a worker without S3_BUCKET gets no file tasks: the API
// creates no files without it).
func registerFiles(handlers map[string]asynq.Handler, d Deps) {
	f := d.Files
	handlers[task.TypeFileProcess] = asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p task.FileProcessPayload
		if err := decode(t, &p); err != nil {
			return err
		}
		if f == nil {
			return errFilesOff
		}
		return f.Process(ctx, queue.OrgID(ctx), p.FileID)
	})
	handlers[task.TypeFileDeleteObjects] = asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p task.FileDeleteObjectsPayload
		if err := decode(t, &p); err != nil {
			return err
		}
		if org := queue.OrgID(ctx); p.OrgID != org {
			return fmt.Errorf("%s: payload org %s is not the task's org %s: %w", t.Type(), p.OrgID, org, asynq.SkipRetry)
		}
		if f == nil {
			return errFilesOff
		}
		return f.DeleteObjects(ctx, p.OrgID, p.FileIDs)
	})
	cleanup := func(ctx context.Context) (any, error) {
		if f == nil {
			return nil, errFilesOff
		}
		return f.CleanupPending(ctx)
	}
	handlers[task.TypeFilesCleanupPending] = &periodic{db: d.DB, observe: d.JobObserved, run: cleanup}
}

var errFilesOff = errors.New("not configured: jobs.Deps.Files is nil")
