package jobs

import (
	"context"

	"github.com/keelhq/keel/internal/backup"
)

// TypeBackupVerify restores a dump into a scratch database and checks it
// (see internal/backup): a fresh pg_dump of the database, or, when the
// verifier has a bucket (BACKUP_S3_BUCKET), the newest dump stored there.
const TypeBackupVerify = "backup:verify"

type backupVerify struct {
	v *backup.Verifier
}

func (b *backupVerify) run(ctx context.Context) (any, error) {
	rep, err := b.v.Verify(ctx)
	return rep, err
}
