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
