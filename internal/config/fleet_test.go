package config_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/config"
)

func TestWorkerQueues(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://app@db/keel", "REDIS_URL": "redis://r:6379/0"}
	for _, tc := range []struct {
		queues string
		want   map[string]int
		err    string
	}{
		{"", map[string]int{"critical": 6, "default": 3, "low": 1}, ""},
		{"low=1", map[string]int{"low": 1}, ""},
		{" critical = 9 , default=1", map[string]int{"critical": 9, "default": 1}, ""},
		{"urgent=1", nil, "unknown queue"},
		{"low", nil, "queue=weight"},
		{"low=0", nil, "queue=weight"},
		{"low=1,low=2", nil, "twice"},
	} {
		env := maps.Clone(base)
		if tc.queues != "" {
			env["WORKER_QUEUES"] = tc.queues
		}
		c, err := config.LoadWorker(config.MapEnv(env))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), "WORKER_QUEUES") || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: want error about %q, got %v", tc.queues, tc.err, err)
			}
			continue
		}
		if err != nil || !maps.Equal(c.Queues, tc.want) {
			t.Errorf("%q: got %v, %v; want %v", tc.queues, c.Queues, err, tc.want)
		}
	}
}

func TestWorkerFleetDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.LoadWorker(config.MapEnv(map[string]string{"DATABASE_URL": "postgres://app@db/keel", "REDIS_URL": "redis://r:6379/0",
		"WORKER_CONCURRENCY": "9", "WORKER_RETRY_BASE": "10s", "WORKER_RETRY_MAX": "1s"}))
	if err == nil || !strings.Contains(err.Error(), "WORKER_RETRY_MAX") {
		t.Fatalf("retry max below base accepted: %v", err)
	}
	if c.OrgConcurrency != 5 || c.BackupDatabaseURL != "" {
		t.Fatalf("defaults: %+v", c.Fleet)
	}
}
