// Command api is Keel's REST API: it validates, authorizes, writes to
// PostgreSQL and hands slow work to the worker through the outbox.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/internal/app"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/health"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/internal/platform/httpserver"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/queueui"
	"github.com/keelhq/keel/internal/platform/redis"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/sentry"
	"github.com/keelhq/keel/internal/platform/stripeapi"
	"github.com/keelhq/keel/jobs/task"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := config.LoadAPI(nil)
	if err != nil {
		return err
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat, "api")
	redis.RouteLibraryLogs(log)
	if err := sentry.Init(cfg.SentryDSN, cfg.Env, cfg.Release, "api"); err != nil {
		return err
	}
	defer sentry.Flush(2 * time.Second)

	db, err := postgres.Open(cfg.Postgres.URL, postgres.Options{MaxOpenConns: cfg.MaxOpenConns, MaxIdleConns: cfg.MaxIdleConns, ConnMaxLifetime: cfg.ConnMaxLifetime, Unprepared: cfg.Unprepared})
	if err != nil {
		return err
	}
	defer db.Close()
	// The platform admin's pool bypasses Row Level Security: it is handed
	// to the admin service only (app.NewAPI), never to a handler.
	var adminDB *sqlx.DB
	if cfg.AdminDatabaseURL != "" {
		if adminDB, err = postgres.Open(cfg.AdminDatabaseURL, postgres.Options{MaxOpenConns: 4, MaxIdleConns: 1, ConnMaxLifetime: cfg.ConnMaxLifetime}); err != nil {
			return err
		}
		defer adminDB.Close()
	} else {
		log.Warn().Msg("ADMIN_DATABASE_URL is not set: /api/v1/admin answers 503 admin_unavailable and the queue UI is off")
	}
	rdb := redis.New(cfg.Redis.Conn)
	defer rdb.Close()

	reg := metrics.NewRegistry()
	checker := health.Stores(db, rdb)
	checker.Log = &log
	var queuesUI http.Handler
	if adminDB != nil {
		mon, err := queueui.NewMonitor(cfg.Redis.Conn.Asynq(), httpapi.QueuesPath)
		if err != nil {
			return err
		}
		defer mon.Close()
		if err := queueui.RegisterQueues(ctx, rdb, task.Queues); err != nil {
			log.Warn().Err(err).Msg("could not register queue names for the monitor")
		}
		queuesUI = mon
	}
	var storage file.Objects
	var filesOrigin string
	if cfg.Files.Bucket != "" {
		c, err := s3.New(ctx, s3.Config(cfg.Files.S3))
		if err != nil {
			return err
		}
		b := s3.Bucket{Client: c, Name: cfg.Files.Bucket}
		storage = b
		// The web app's CSP lets pages reach the presigned URLs' origin.
		if filesOrigin, err = b.Origin(ctx); err != nil {
			return err
		}
	} else {
		log.Warn().Msg("S3_BUCKET is not set: file uploads and downloads answer 503 storage_not_configured")
	}
	api, err := app.NewAPI(app.APIDeps{DB: db, AdminDB: adminDB, Redis: rdb, BaseURL: cfg.BaseURL, TokenIssuer: cfg.JWTIssuer, Plans: cfg.Catalog,
		Storage: storage, FilePolicy: cfg.Files.Policy(),
		Stripe:         stripeapi.New(stripeapi.Config{SecretKey: cfg.SecretKey, APIBase: cfg.APIBase}),
		WebhookSecrets: cfg.Stripe.WebhookSecrets(), BillingMetrics: billing.NewMetrics(reg), AuthMetrics: auth.NewMetrics(reg),
		Keys: app.Keys{JWTSigning: cfg.JWTSigningKey, JWTPreviousSigning: cfg.JWTPreviousSigningKey, TOTPEncryption: cfg.TOTPEncryptionKey},
		Limits: app.Limits{HashConcurrency: cfg.HashConcurrency, HashWait: cfg.HashWait,
			Register:         auth.Rate(cfg.RegisterRate),
			PasswordReset:    auth.Rate(cfg.PasswordResetRate),
			InvitationAccept: auth.Rate(cfg.InvitationAcceptRate)},
		HTTP: httpapi.Deps{
			Log:                log,
			Metrics:            metrics.NewHTTP(reg),
			Health:             checker,
			CORSAllowedOrigins: cfg.CORSAllowedOrigins,
			TrustedProxies:     cfg.TrustedProxies,
			MaxBodyBytes:       int64(cfg.MaxBodyBytes),
			Production:         cfg.Env == "production",
			RefreshCookie:      cfg.RefreshCookie,
			QueuesUI:           queuesUI,
			WebDir:             cfg.WebDir,
			FilesOrigin:        filesOrigin,
		}})
	if err != nil {
		return err
	}
	log.Info().Str("env", cfg.Env).Str("database", config.Redact(cfg.Postgres.URL)).
		Int("hash_concurrency", api.Auth.Hasher.Concurrency()).Strs("trusted_proxies", cfg.TrustedProxies).Msg("api starting")
	// The public API and the metrics listener (METRICS_ADDR, for the
	// scraper only) stop together: a taken port on either stops both.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserver.Run(gctx, cfg.HTTPAddr, api.Handler, cfg.ShutdownTimeout, log) })
	g.Go(func() error {
		return httpserver.Run(gctx, cfg.MetricsAddr, health.Mux(checker, metrics.Handler(reg)), 5*time.Second, log)
	})
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info().Msg("api stopped")
	return nil
}
