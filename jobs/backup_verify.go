package jobs

import (
	"context"

	"github.com/keelhq/keel/internal/backup"
)

// backupVerify runs backup:verify (see internal/backup): a fresh pg_dump of
// the database, or, when the verifier has a bucket (BACKUP_S3_BUCKET), the
// newest dump stored there.
type backupVerify struct {
	v *backup.Verifier
}

func (b *backupVerify) run(ctx context.Context) (any, error) {
	rep, err := b.v.Verify(ctx)
	return rep, err
}

// backupTake runs backup:take: pg_dump -Fc streamed into the backup bucket,
// then retention. Its report (key, bytes, parts, seconds, deleted keys) is
// the run's detail in job_runs, also when it failed.
type backupTake struct {
	t *backup.Taker
}

func (b *backupTake) run(ctx context.Context) (any, error) {
	rep, err := b.t.Take(ctx)
	return rep, err
}
