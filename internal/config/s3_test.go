package config_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/config"
)

func TestWorkerBackupS3(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://app@db/keel", "REDIS_URL": "redis://r:6379/0"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		err  string // variable named in the error; empty for none
		want config.BackupS3
	}{
		{"unset", nil, "", config.BackupS3{S3: config.S3{Region: "us-east-1"}, MaxAge: 26 * time.Hour,
			RetentionDays: 30, RetentionKeep: 7, PartSize: 16 << 20, Concurrency: 4}},
		{"minio", map[string]string{"BACKUP_S3_BUCKET": "keel-backups", "BACKUP_S3_PREFIX": "daily/", "BACKUP_MAX_AGE": "30h",
			"S3_ENDPOINT": "http://minio:9000", "S3_REGION": "eu-west-1", "S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s",
			"BACKUP_RETENTION_DAYS": "0", "BACKUP_RETENTION_KEEP": "3", "BACKUP_PART_SIZE_MB": "5", "BACKUP_UPLOAD_CONCURRENCY": "2"}, "",
			config.BackupS3{S3: config.S3{Endpoint: "http://minio:9000", Region: "eu-west-1", AccessKeyID: "k", SecretAccessKey: "s"},
				Bucket: "keel-backups", Prefix: "daily/", MaxAge: 30 * time.Hour,
				RetentionDays: 0, RetentionKeep: 3, PartSize: 5 << 20, Concurrency: 2}},
		{"part under S3's minimum", map[string]string{"BACKUP_PART_SIZE_MB": "4"}, "BACKUP_PART_SIZE_MB", config.BackupS3{}},
		{"keep none", map[string]string{"BACKUP_RETENTION_KEEP": "0"}, "BACKUP_RETENTION_KEEP", config.BackupS3{}},
		{"negative days", map[string]string{"BACKUP_RETENTION_DAYS": "-1"}, "BACKUP_RETENTION_DAYS", config.BackupS3{}},
		{"bucket without prefix", map[string]string{"BACKUP_S3_BUCKET": "keel-backups"}, "BACKUP_S3_BUCKET", config.BackupS3{}},
		{"prefix without bucket", map[string]string{"BACKUP_S3_PREFIX": "daily/"}, "BACKUP_S3_BUCKET", config.BackupS3{}},
		{"bad bucket", map[string]string{"BACKUP_S3_BUCKET": "Keel_Backups", "BACKUP_S3_PREFIX": "d/"}, "BACKUP_S3_BUCKET", config.BackupS3{}},
		{"leading slash", map[string]string{"BACKUP_S3_BUCKET": "keel", "BACKUP_S3_PREFIX": "/d/"}, "BACKUP_S3_PREFIX", config.BackupS3{}},
		{"key without secret", map[string]string{"S3_ACCESS_KEY_ID": "k"}, "S3_ACCESS_KEY_ID", config.BackupS3{}},
		{"endpoint not a URL", map[string]string{"S3_ENDPOINT": "minio:9000"}, "S3_ENDPOINT", config.BackupS3{}},
		{"max age too short", map[string]string{"BACKUP_MAX_AGE": "1s"}, "BACKUP_MAX_AGE", config.BackupS3{}},
	} {
		env := maps.Clone(base)
		maps.Copy(env, tc.env)
		c, err := config.LoadWorker(config.MapEnv(env))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: want an error naming %s, got %v", tc.name, tc.err, err)
			}
			continue
		}
		if err != nil || c.BackupS3 != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, c.BackupS3, err, tc.want)
		}
	}
}

func TestCtlBackupS3AndSecretMasked(t *testing.T) {
	t.Parallel()
	ctl, err := config.LoadCtl(config.MapEnv(map[string]string{"BACKUP_S3_BUCKET": "keel-backups", "BACKUP_S3_PREFIX": "db/",
		"S3_ACCESS_KEY_ID": "AKIA1", "S3_SECRET_ACCESS_KEY": "very-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ctl.BackupS3()
	if err != nil || b.Bucket != "keel-backups" || b.Prefix != "db/" {
		t.Fatalf("%+v, %v", b, err)
	}
	if s := b.S3.String(); strings.Contains(s, "very-secret") || !strings.Contains(s, "AKIA1") {
		t.Fatalf("String() = %q", s)
	}
}

func TestSchedulerBackupSchedules(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://app@db/keel", "REDIS_URL": "redis://r:6379/0"}
	c, err := config.LoadScheduler(config.MapEnv(base))
	if err != nil || len(c.Schedules) != 0 {
		t.Fatalf("unset: %v, %v", c.Schedules, err)
	}
	env := maps.Clone(base)
	env["BACKUP_TAKE_SCHEDULE"] = "30 1 * * *"
	env["BACKUP_VERIFY_SCHEDULE"] = "off"
	c, err = config.LoadScheduler(config.MapEnv(env))
	if err != nil || c.Schedules["backup:take"] != "30 1 * * *" || c.Schedules["backup:verify"] != "off" {
		t.Fatalf("set: %v, %v", c.Schedules, err)
	}
	env["BACKUP_TAKE_SCHEDULE"] = "daily at 3"
	if _, err := config.LoadScheduler(config.MapEnv(env)); err == nil || !strings.Contains(err.Error(), "BACKUP_TAKE_SCHEDULE") {
		t.Fatalf("bad spec: %v", err)
	}
}
