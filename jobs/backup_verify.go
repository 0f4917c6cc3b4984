package jobs

import (
	"context"

	"github.com/keelhq/keel/internal/backup"
)

// TypeBackupVerify restores a fresh pg_dump of the database into a scratch
// database and checks it (see internal/backup). Restoring the latest dump
// from an S3 prefix instead is future work, for when the S3 adapter lands.
const TypeBackupVerify = "backup:verify"

type backupVerify struct {
	v *backup.Verifier
}

func (b *backupVerify) run(ctx context.Context) (any, error) {
	rep, err := b.v.Verify(ctx)
	return rep, err
}
