package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// S3 is how to reach an S3 or S3-compatible object store.
type S3 struct {
	// Endpoint is an S3-compatible server's URL (MinIO, versitygw); empty
	// means AWS. When set, buckets are addressed by path.
	Endpoint string
	Region   string
	// AccessKeyID and SecretAccessKey are static credentials; both empty
	// leaves credentials to the SDK's default chain (env, files, role).
	AccessKeyID     string
	SecretAccessKey string
	// PublicEndpoint (S3_PUBLIC_ENDPOINT) is where browsers and API clients
	// reach the server when Endpoint is an internal address; presigned
	// URLs are signed for it. Empty means Endpoint.
	PublicEndpoint string
}

func loadS3(l *Loader) S3 {
	s := S3{
		Endpoint:        l.URL("S3_ENDPOINT", "", false, "https", "http"),
		Region:          l.String("S3_REGION", "us-east-1"),
		AccessKeyID:     l.String("S3_ACCESS_KEY_ID", ""),
		SecretAccessKey: l.String("S3_SECRET_ACCESS_KEY", ""),
		PublicEndpoint:  l.URL("S3_PUBLIC_ENDPOINT", "", false, "https", "http"),
	}
	if (s.AccessKeyID == "") != (s.SecretAccessKey == "") {
		l.fail("S3_ACCESS_KEY_ID", "and S3_SECRET_ACCESS_KEY must be set together (or neither, for the SDK's default credentials)")
	}
	return s
}

// String describes the store without its secret.
func (s S3) String() string {
	where := s.Endpoint
	if where == "" {
		where = "aws"
	}
	key := "default chain"
	if s.AccessKeyID != "" {
		key = s.AccessKeyID + ":***"
	}
	return fmt.Sprintf("s3(%s, %s, %s)", where, s.Region, key)
}

// BackupS3 is where backup:take stores dumps and backup:verify finds them.
// An empty Bucket means backup:verify verifies a fresh pg_dump instead, and
// backup:take fails saying what to set.
type BackupS3 struct {
	S3     S3
	Bucket string
	Prefix string
	// MaxAge is how old the newest stored dump may be before verification
	// fails.
	MaxAge time.Duration
	// RetentionDays and RetentionKeep: a successful take deletes its dumps
	// older than RetentionDays (0: none), except the newest RetentionKeep.
	RetentionDays int
	RetentionKeep int
	// PartSize (bytes) and Concurrency bound the upload's memory to
	// PartSize × Concurrency.
	PartSize    int64
	Concurrency int
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func loadBackupS3(l *Loader) BackupS3 {
	b := BackupS3{
		S3:     loadS3(l),
		Bucket: l.String("BACKUP_S3_BUCKET", ""),
		Prefix: l.String("BACKUP_S3_PREFIX", ""),
		MaxAge: l.Duration("BACKUP_MAX_AGE", 26*time.Hour, time.Minute),
		// 0 disables deletion; 10 years caps typos.
		RetentionDays: l.Int("BACKUP_RETENTION_DAYS", 30, 0, 3650),
		RetentionKeep: l.Int("BACKUP_RETENTION_KEEP", 7, 1, 10000),
		// S3's part limits are 5 MiB and 5 GiB.
		PartSize:    int64(l.Int("BACKUP_PART_SIZE_MB", 16, 5, 5120)) << 20,
		Concurrency: l.Int("BACKUP_UPLOAD_CONCURRENCY", 4, 1, 64),
	}
	switch {
	case (b.Bucket == "") != (b.Prefix == ""):
		l.fail("BACKUP_S3_BUCKET", "and BACKUP_S3_PREFIX must be set together (or neither, to verify a fresh pg_dump)")
	case b.Bucket != "" && !bucketName.MatchString(b.Bucket):
		l.fail("BACKUP_S3_BUCKET", "must be a bucket name (3-63 lowercase letters, digits, dots, hyphens), got %q", b.Bucket)
	case strings.HasPrefix(b.Prefix, "/"):
		l.fail("BACKUP_S3_PREFIX", "is a key prefix such as keel/daily/, without a leading slash, got %q", b.Prefix)
	}
	return b
}

// BackupS3 reads where `keelctl backup take` stores dumps and `keelctl
// backup verify` finds them.
func (c *Ctl) BackupS3() (BackupS3, error) {
	l := NewLoader(c.l.get)
	b := loadBackupS3(l)
	return b, l.Err()
}
