// Command worker runs Keel's background jobs: the Asynq server with every
// handler in jobs/, and the outbox relay that feeds it. Run as many replicas
// as the load needs; none is special. WORKER_QUEUES picks the queues a
// replica serves, so a fleet can be dedicated to one queue.
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

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/file/filedb"
	"github.com/keelhq/keel/internal/health"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/platform/httpserver"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/mail"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/internal/platform/redis"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/sentry"
	"github.com/keelhq/keel/internal/platform/stripeapi"
	"github.com/keelhq/keel/internal/retention"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
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
	redis.RouteLibraryLogs(log)
	if err := sentry.Init(cfg.SentryDSN, cfg.Env, cfg.Release, "worker"); err != nil {
		return err
	}
	defer sentry.Flush(2 * time.Second)

	db, err := postgres.Open(cfg.Postgres.URL, postgres.Options{MaxOpenConns: cfg.MaxOpenConns, MaxIdleConns: cfg.MaxIdleConns, ConnMaxLifetime: cfg.ConnMaxLifetime, Unprepared: cfg.Unprepared})
	if err != nil {
		return err
	}
	defer db.Close()
	rdb := redis.New(cfg.Redis.Conn)
	defer rdb.Close()
	smtp, err := mail.NewSMTP(cfg.SMTPURL, cfg.From)
	if err != nil {
		return err
	}
	render, err := email.NewRenderer(cfg.BaseURL, "Keel")
	if err != nil {
		return err
	}
	client := asynq.NewClient(cfg.Redis.Conn.Asynq())
	defer client.Close()
	inspector := asynq.NewInspector(cfg.Redis.Conn.Asynq())
	defer inspector.Close()

	// The relay and outbox:sweep mark a row delivered only once replicas
	// hold its task, so a Redis failover cannot lose it.
	var confirm outbox.Confirmer
	if a := cfg.ReplicaAcks; a.Acks > 0 {
		fence := redis.NewReplicaFence(cfg.Redis.Conn, a.Acks, a.Timeout)
		defer fence.Close()
		confirm = fence
	}

	reg := metrics.NewRegistry()
	taskMetrics := metrics.NewTasks(reg)
	// Every task type this worker's queues carry has its series from the
	// start, at zero, so failure rates and dead-task alerts work before
	// the first failure.
	served := map[string]string{}
	for _, sp := range task.Specs() {
		if _, ok := cfg.Queues[sp.Queue]; ok {
			served[sp.Type] = sp.Queue
		}
	}
	taskMetrics.Declare(served)
	jobMetrics := metrics.NewJobs(reg)
	var periodic []string
	// The default table names every periodic job; which ones run is the
	// scheduler's BACKUP_*_SCHEDULE.
	all, err := jobs.Schedule(nil)
	if err != nil {
		return err
	}
	for _, e := range all {
		if _, ok := served[e.Name]; ok {
			periodic = append(periodic, e.Name)
		}
	}
	jobMetrics.Declare(periodic)
	reg.MustRegister(queue.NewCollector(inspector, task.Queues), outbox.NewCollector(db))

	verifier := &backup.Verifier{SourceURL: cfg.BackupDatabaseURL, PgDump: cfg.PgDump, PgRestore: cfg.PgRestore}
	taker := &backup.Taker{SourceURL: cfg.BackupDatabaseURL, PgDump: cfg.PgDump}
	if b := cfg.BackupS3; b.Bucket != "" {
		store, err := s3.New(ctx, s3.Config(b.S3))
		if err != nil {
			return err
		}
		verifier.Store, verifier.Bucket, verifier.Prefix, verifier.MaxAge = store, b.Bucket, b.Prefix, b.MaxAge
		taker.Store, taker.Bucket, taker.Prefix = store, b.Bucket, b.Prefix
		taker.Stream = s3.StreamOptions{PartSize: b.PartSize, Concurrency: b.Concurrency}
		taker.Retention = backup.Retention{Days: b.RetentionDays, Keep: b.RetentionKeep}
	}

	bill := &billing.Service{DB: db, Store: billingdb.Store{}, Plans: cfg.Catalog,
		Stripe:  stripeapi.New(stripeapi.Config{SecretKey: cfg.SecretKey, APIBase: cfg.APIBase}),
		BaseURL: cfg.BaseURL, Metrics: billing.NewMetrics(reg), Log: log}
	if bill.Stripe == nil {
		log.Warn().Msg("STRIPE_SECRET_KEY is not set: reconciliation, seat and plan changes fail until it is")
	}
	files := &file.Service{DB: db, Store: filedb.Store{}, Policy: cfg.Files.Policy(),
		Limiter: plandb.NewLimiter(cfg.Catalog)}
	if cfg.Files.Bucket != "" {
		c, err := s3.New(ctx, s3.Config(cfg.Files.S3))
		if err != nil {
			return err
		}
		files.Objects = s3.Bucket{Client: c, Name: cfg.Files.Bucket}
	}

	mux := asynq.NewServeMux()
	// The org limiter is outermost: a throttled task is neither run, logged
	// as a failure, nor counted as processed.
	limiter := &queue.OrgLimiter{Limit: cfg.OrgConcurrency, Metrics: taskMetrics}
	mux.Use(limiter.Middleware(), queue.Middleware(log, taskMetrics))
	err = jobs.Register(mux, jobs.Deps{
		DB: db, Mail: smtp, Render: render,
		Queue: client, Confirm: confirm, Archive: inspector, Log: log,
		Backup:     verifier,
		BackupTake: taker,
		Files:      files,
		Billing:    bill,
		Retention: retention.Policy{
			Outbox: cfg.OutboxRetention, SentEmails: cfg.SentEmailRetention, DeadTasks: cfg.DeadTaskRetention,
			JobRuns: cfg.JobRunRetention, Audit: cfg.AuditRetention, SoftDeleted: cfg.SoftDeletedRetention,
			StripeEvents: cfg.StripeEventRetention, BillingNotices: cfg.BillingNoticeRetention,
		},
		JobObserved: jobMetrics.Observe,
	})
	if err != nil {
		return err
	}
	srv := asynq.NewServer(cfg.Redis.Conn.Asynq(), asynq.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          cfg.Queues,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          queue.Logger(log),
		RetryDelayFunc:  queue.RetryDelay(cfg.RetryBase, cfg.RetryMax),
		IsFailure:       queue.IsFailure,
		ErrorHandler:    &queue.FailureHandler{Dead: &deadtask.Service{DB: db}, Metrics: taskMetrics, Log: log},
		// Throttled tasks and short retries wait in the retry set; check it
		// every second so a one-second delay is not five.
		DelayedTaskCheckInterval: time.Second,
		TaskCheckInterval:        cfg.PollInterval,
		HealthCheckFunc: func(err error) {
			if err != nil {
				log.Warn().Err(err).Msg("redis health check failed")
			}
		},
	})

	checker := health.Stores(db, rdb)
	checker.Log = &log

	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	wake := outbox.Listen(relayCtx, cfg.Postgres.URL, log)
	relay := &outbox.Relay{DB: db, Queue: client, Log: log, Batch: cfg.RelayBatch, Idle: cfg.RelayInterval, Wake: wake, Confirm: confirm}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); relay.Run(relayCtx) }()

	// Metrics and health outlive the task server, so the drain is observable.
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	httpErr := make(chan error, 1)
	go func() {
		httpErr <- httpserver.Run(httpCtx, cfg.MetricsAddr, health.Mux(checker, metrics.Handler(reg)), 5*time.Second, log)
	}()
	log.Info().Str("env", cfg.Env).Int("concurrency", cfg.Concurrency).Interface("queues", cfg.Queues).
		Int("org_concurrency", cfg.OrgConcurrency).Stringer("redis", cfg.Redis.Conn).
		Int("min_replica_acks", cfg.ReplicaAcks.Acks).Msg("worker started")
	select {
	case <-ctx.Done():
	case err = <-httpErr:
		httpErr <- nil
	}

	// Stop taking tasks at once, stop relaying, then let in-flight tasks
	// finish within ShutdownTimeout; Asynq re-queues what is left.
	log.Info().Dur("timeout", cfg.ShutdownTimeout).Msg("worker draining")
	srv.Stop()
	stopRelay()
	wg.Wait()
	srv.Shutdown()
	stopHTTP()
	if herr := <-httpErr; err == nil {
		err = herr
	}
	log.Info().Msg("worker stopped")
	return err
}
