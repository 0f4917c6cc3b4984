// Command scheduler enqueues Keel's periodic tasks from jobs.Schedule. It
// only enqueues; the worker runs them. Replicas are safe: each slot's task ID
// is fixed, so a second replica's firing is refused by Redis.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/health"
	"github.com/keelhq/keel/internal/jobrun"
	"github.com/keelhq/keel/internal/platform/clock"
	"github.com/keelhq/keel/internal/platform/httpserver"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/redis"
	"github.com/keelhq/keel/internal/platform/sentry"
	"github.com/keelhq/keel/internal/schedule"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := config.LoadScheduler(nil)
	if err != nil {
		return err
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat, "scheduler")
	redis.RouteLibraryLogs(log)
	if err := sentry.Init(cfg.SentryDSN, cfg.Env, cfg.Release, "scheduler"); err != nil {
		return err
	}
	defer sentry.Flush(2 * time.Second)

	db, err := postgres.Open(cfg.Postgres.URL, postgres.Options{MaxOpenConns: 4, MaxIdleConns: 1, ConnMaxLifetime: cfg.ConnMaxLifetime})
	if err != nil {
		return err
	}
	defer db.Close()
	rdb := redis.New(cfg.Redis.Conn)
	defer rdb.Close()
	client := asynq.NewClient(cfg.Redis.Conn.Asynq())
	defer client.Close()

	reg := metrics.NewRegistry()
	fired := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keel_scheduler_firings_total", Help: "Periodic firings by entry and result (enqueued, duplicate, error, skipped).",
	}, []string{"entry", "result"})
	entries, err := jobs.Schedule(cfg.Schedules)
	if err != nil {
		return err
	}
	// Every entry's series exist from the start, so an alert on errors or
	// skips works before the first one.
	for _, e := range entries {
		for _, result := range []string{"enqueued", "duplicate", "error", "skipped"} {
			fired.WithLabelValues(e.Name, result)
		}
	}
	reg.MustRegister(fired)
	// Read from job_runs at each scrape, so a restarted scheduler (or any
	// replica) reports the same ages the alerts watch.
	reg.MustRegister(jobrun.NewCollector(db, "keel_backup_last_success_timestamp_seconds",
		"Unix time of the latest successful run of each backup job, from job_runs (0 if none).",
		jobrun.StatusOK, task.TypeBackupTake, task.TypeBackupVerify),
		jobrun.NewCollector(db, "keel_backup_last_failure_timestamp_seconds",
			"Unix time of the latest failed run of each backup job, from job_runs (0 if none).",
			jobrun.StatusFailed, task.TypeBackupTake, task.TypeBackupVerify))
	var clk clock.Clock = clock.Real{}
	if tc := cfg.TestClock; tc.Rate > 1 {
		clk = clock.Scaled{Origin: tc.Origin, Rate: tc.Rate}
		log.Warn().Int("rate", tc.Rate).Time("origin", tc.Origin).Msg("scheduler clock sped up for tests")
	}
	s := &schedule.Scheduler{Entries: entries, Queue: client, Log: log, Clock: clk,
		State: &schedule.RedisState{Client: rdb},
		// One Sentry event per lost run, not per retried attempt: a Redis
		// outage retries every entry many times a minute.
		GaveUp: func(entry string, slot time.Time, err error) {
			sentry.Capture(ctx, fmt.Errorf("schedule %s: slot %s not fired: %w", entry, slot.Format(time.RFC3339), err),
				map[string]string{"entry": entry, "slot": slot.Format(time.RFC3339)})
		},
		Skipped: func(entry string, _ time.Time) {
			fired.WithLabelValues(entry, "skipped").Inc()
		},
		Fired: func(entry string, enqueued bool, err error) {
			switch {
			case err != nil:
				fired.WithLabelValues(entry, "error").Inc()
			case enqueued:
				fired.WithLabelValues(entry, "enqueued").Inc()
			default:
				fired.WithLabelValues(entry, "duplicate").Inc()
			}
		}}
	if err := s.Parse(); err != nil {
		return err
	}
	checker := health.Stores(db, rdb)
	checker.Log = &log

	// Either half failing stops the other, so a taken port cannot leave a
	// scheduler running without health endpoints.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return httpserver.Run(gctx, cfg.MetricsAddr, health.Mux(checker, metrics.Handler(reg)), 5*time.Second, log)
	})
	g.Go(func() error { return s.Run(gctx) })
	log.Info().Int("entries", len(s.Entries)).Msg("scheduler started")
	if err := g.Wait(); err != nil {
		// Reported before the deferred Flush: a scheduler that stops on an
		// error fires nothing until it is restarted.
		sentry.Capture(context.Background(), fmt.Errorf("scheduler stopped: %w", err), nil)
		return err
	}
	log.Info().Msg("scheduler stopped")
	return nil
}
