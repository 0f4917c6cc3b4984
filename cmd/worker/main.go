// Command worker runs Keel's background jobs: the Asynq server with every
// handler in jobs/, and the outbox relay that feeds it. Run as many replicas
// as the load needs; none is special.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/health"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/httpserver"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/mail"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/internal/platform/redis"
	"github.com/keelhq/keel/internal/platform/sentry"
	"github.com/keelhq/keel/jobs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := config.LoadWorker(nil)
	if err != nil {
		return err
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat, "worker")
	if err := sentry.Init(cfg.SentryDSN, cfg.Env, cfg.Release, "worker"); err != nil {
		return err
	}
	defer sentry.Flush(2 * time.Second)

	db, err := postgres.Open(cfg.Postgres.URL, postgres.Options{MaxOpenConns: cfg.MaxOpenConns, MaxIdleConns: cfg.MaxIdleConns, ConnMaxLifetime: cfg.ConnMaxLifetime})
	if err != nil {
		return err
	}
	defer db.Close()
	rdb, err := redis.New(cfg.Redis.URL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	smtp, err := mail.NewSMTP(cfg.SMTPURL, cfg.From)
	if err != nil {
		return err
	}
	render, err := email.NewRenderer(cfg.BaseURL, "Keel")
	if err != nil {
		return err
	}

	reg := metrics.NewRegistry()
	mux := asynq.NewServeMux()
	mux.Use(queue.Middleware(log, metrics.NewTasks(reg)))
	if err := jobs.Register(mux, jobs.Deps{DB: db, Mail: smtp, Render: render}); err != nil {
		return err
	}
	srv := asynq.NewServer(cfg.Redis.Opt, asynq.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          map[string]int{jobs.QueueCritical: 6, jobs.QueueDefault: 3, jobs.QueueLow: 1},
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          queue.Logger(log),
		HealthCheckFunc: func(err error) {
			if err != nil {
				log.Warn().Err(err).Msg("redis health check failed")
			}
		},
	})
	client := asynq.NewClient(cfg.Redis.Opt)
	defer client.Close()

	checker := health.Stores(db, rdb)

	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	wake := outbox.Listen(relayCtx, cfg.Postgres.URL, log)
	relay := &outbox.Relay{DB: db, Queue: client, Log: log, Batch: cfg.RelayBatch, Idle: cfg.RelayInterval, Wake: wake}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); relay.Run(relayCtx) }()

	log.Info().Str("env", cfg.Env).Int("concurrency", cfg.Concurrency).Msg("worker started")
	err = httpserver.Run(ctx, cfg.MetricsAddr, health.Mux(checker, metrics.Handler(reg)), 5*time.Second, log)

	// Stop relaying first so nothing new arrives, then let in-flight tasks
	// finish within ShutdownTimeout; Asynq re-queues what is left.
	stopRelay()
	wg.Wait()
	srv.Shutdown()
	log.Info().Msg("worker stopped")
	return err
}
