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
		{"unset", nil, "", config.BackupS3{S3: config.S3{Region: "us-east-1"}, MaxAge: 26 * time.Hour}},
		{"minio", map[string]string{"BACKUP_S3_BUCKET": "keel-backups", "BACKUP_S3_PREFIX": "daily/", "BACKUP_MAX_AGE": "30h",
			"S3_ENDPOINT": "http://minio:9000", "S3_REGION": "eu-west-1", "S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s"}, "",
			config.BackupS3{S3: config.S3{Endpoint: "http://minio:9000", Region: "eu-west-1", AccessKeyID: "k", SecretAccessKey: "s"},
				Bucket: "keel-backups", Prefix: "daily/", MaxAge: 30 * time.Hour}},
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
