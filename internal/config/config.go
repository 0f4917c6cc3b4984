package config

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/keelhq/keel/internal/platform/redis"
)

// Base is what every binary reads.
type Base struct {
	Env       string // development | test | staging | production
	LogLevel  string
	LogFormat string // json | console
	SentryDSN string
	Release   string
}

func loadBase(l *Loader) Base {
	b := Base{
		Env:       l.OneOf("ENV", "development", "development", "test", "staging", "production"),
		LogLevel:  l.OneOf("LOG_LEVEL", "info", "trace", "debug", "info", "warn", "error"),
		SentryDSN: l.String("SENTRY_DSN", ""),
		Release:   l.String("RELEASE", "dev"),
	}
	def := "json"
	if b.Env == "development" {
		def = "console"
	}
	b.LogFormat = l.OneOf("LOG_FORMAT", def, "json", "console")
	if b.SentryDSN != "" {
		l.URL("SENTRY_DSN", "", false, "https", "http")
	}
	return b
}

// Postgres is the application's database connection: the non-owner role that
// Row Level Security applies to.
type Postgres struct {
	URL             string
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	// Unprepared: DATABASE_PREPARED_STATEMENTS=off, for a pooler that
	// does not keep a session's prepared statements (postgres.Options).
	Unprepared bool
}

func loadPostgres(l *Loader) Postgres {
	open := l.Int("DATABASE_MAX_OPEN_CONNS", 20, 1, 1000)
	return Postgres{
		URL:          l.URL("DATABASE_URL", "", true, "postgres", "postgresql"),
		MaxOpenConns: open,
		// As many as may be open by default: under a load that swings
		// around the idle limit, database/sql closes and reopens
		// connections many times a second, and each new one loses the
		// statements prepared on it (postgres.QueryMessage).
		MaxIdleConns:    l.Int("DATABASE_MAX_IDLE_CONNS", open, 0, 1000),
		ConnMaxLifetime: l.Duration("DATABASE_CONN_MAX_LIFETIME", 30*time.Minute, time.Second),
		Unprepared:      l.OneOf("DATABASE_PREPARED_STATEMENTS", "on", "on", "off") == "off",
	}
}

// Redis is the queue's and the cache's server: one server, or the master
// that Sentinels name (REDIS_URL with redis-sentinel://).
type Redis struct {
	URL string
	// Conn is the parsed form every client, Keel's and Asynq's, is built from.
	Conn redis.Conn
}

func loadRedis(l *Loader) Redis {
	r := Redis{URL: l.Required("REDIS_URL")}
	sentinelPassword := l.String("REDIS_SENTINEL_PASSWORD", "")
	if r.URL == "" {
		return r
	}
	c, err := redis.ParseURL(r.URL)
	if err != nil {
		l.fail("REDIS_URL", "%v, got %q", err, redact(r.URL))
		return r
	}
	if sentinelPassword != "" {
		if !c.Sentinel() {
			l.fail("REDIS_SENTINEL_PASSWORD", "is only used with a redis-sentinel:// REDIS_URL")
		}
		c.SentinelPassword = sentinelPassword
	}
	r.Conn = c
	return r
}

// ReplicaAcks is how the outbox relay makes sure a task it enqueued survives
// a Redis failover before it marks the row delivered (REDIS_MIN_REPLICA_ACKS,
// REDIS_REPLICA_ACK_TIMEOUT). Acks 0 turns the check off, for a single
// server that has no replica to ask.
type ReplicaAcks struct {
	Acks    int
	Timeout time.Duration
}

func loadReplicaAcks(l *Loader) ReplicaAcks {
	return ReplicaAcks{
		Acks:    l.Int("REDIS_MIN_REPLICA_ACKS", 0, 0, 16),
		Timeout: l.Duration("REDIS_REPLICA_ACK_TIMEOUT", time.Second, 10*time.Millisecond),
	}
}

// Mail is the outgoing SMTP server.
type Mail struct {
	SMTPURL string
	From    string
}

// loadMail reads the SMTP server. SMTP_URL's tls parameter picks STARTTLS:
// none, opportunistic (use it when offered, else send in clear) or
// mandatory. Unset, it is opportunistic except with ENV=production, where
// it becomes mandatory: reset and invitation links must not fall back to
// cleartext because a server (or someone on the path) stopped offering
// TLS. An operator who accepts that sets tls=opportunistic explicitly.
func loadMail(l *Loader, env string) Mail {
	m := Mail{
		SMTPURL: l.URL("SMTP_URL", "smtp://127.0.0.1:1025", false, "smtp", "smtps"),
		From:    l.String("MAIL_FROM", "Keel <no-reply@keel.localhost>"),
	}
	u, err := url.Parse(m.SMTPURL)
	if err != nil || u.Scheme != "smtp" {
		return m // l.URL recorded a bad URL; smtps is TLS from the first byte
	}
	q := u.Query()
	switch q.Get("tls") {
	case "none", "opportunistic", "mandatory":
	case "":
		if env == "production" {
			q.Set("tls", "mandatory")
			u.RawQuery = q.Encode()
			m.SMTPURL = u.String()
		}
	default:
		l.fail("SMTP_URL", "tls must be none, opportunistic or mandatory, got %q", q.Get("tls"))
	}
	return m
}

// App is what code that writes links to users needs.
type App struct {
	BaseURL string
}

func loadApp(l *Loader) App {
	return App{BaseURL: l.URL("APP_BASE_URL", "http://localhost:8080", false, "http", "https")}
}

// API is cmd/api's configuration.
type API struct {
	Base
	Postgres
	Redis
	App
	Auth
	Plans
	Stripe
	// Files is S3_BUCKET and the upload policy; the API presigns uploads
	// and downloads with it.
	Files    Files
	HTTPAddr string
	// MetricsAddr serves /metrics (and /healthz, /readyz) on a listener of
	// its own, never on the public HTTPAddr.
	MetricsAddr        string
	CORSAllowedOrigins []string
	// TrustedProxies are the proxies whose X-Forwarded-For names the client
	// (TRUSTED_PROXIES); empty trusts none.
	TrustedProxies  []string
	MaxBodyBytes    int
	ShutdownTimeout time.Duration
	// AdminDatabaseURL (ADMIN_DATABASE_URL) connects as the platform
	// admin's role, which bypasses Row Level Security; only the admin
	// capability gets this pool. Empty: /api/v1/admin answers 503.
	AdminDatabaseURL string
	// WebDir (WEB_DIR) is the built web app (web/dist, holding index.html)
	// the api serves at every path outside /api and /admin; empty: none.
	WebDir string
}

// LoadAPI reads cmd/api's configuration.
func LoadAPI(get Getenv) (API, error) {
	l := NewLoader(get)
	c := API{
		Base:               loadBase(l),
		Postgres:           loadPostgres(l),
		Redis:              loadRedis(l),
		App:                loadApp(l),
		Plans:              loadPlans(l),
		Stripe:             loadStripe(l),
		Files:              loadFiles(l),
		HTTPAddr:           l.Addr("HTTP_ADDR", ":8080"),
		MetricsAddr:        l.Addr("METRICS_ADDR", ":9090"),
		CORSAllowedOrigins: l.List("CORS_ALLOWED_ORIGINS"),
		TrustedProxies:     l.TrustedProxies("TRUSTED_PROXIES"),
		MaxBodyBytes:       l.Int("HTTP_MAX_BODY_BYTES", 1<<20, 1024, 1<<30),
		ShutdownTimeout:    l.Duration("SHUTDOWN_TIMEOUT", 15*time.Second, time.Second),
		WebDir:             l.String("WEB_DIR", ""),
	}
	if c.WebDir != "" {
		if st, err := os.Stat(filepath.Join(c.WebDir, "index.html")); err != nil || !st.Mode().IsRegular() {
			l.fail("WEB_DIR", "must be a directory holding the built web app's index.html (cd web && npm run build makes web/dist), got %q", c.WebDir)
		}
	}
	c.Auth = loadAuth(l, c.BaseURL)
	c.AdminDatabaseURL = loadAdminDatabase(l, c.Postgres.URL)
	if c.MetricsAddr == c.HTTPAddr {
		l.fail("METRICS_ADDR", "must differ from HTTP_ADDR: metrics are never served on the public port")
	}
	for _, o := range c.CORSAllowedOrigins {
		if o == "*" {
			l.fail("CORS_ALLOWED_ORIGINS", "must list origins; * is not allowed with credentials")
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			l.fail("CORS_ALLOWED_ORIGINS", "must be origins such as https://app.example.com, got %q", o)
		}
	}
	return c, l.Err()
}

// Worker is cmd/worker's configuration.
type Worker struct {
	Base
	Postgres
	Redis
	Mail
	App
	Plans
	Stripe
	// Files is S3_BUCKET and the upload policy; file:process checks
	// uploads against it.
	Files           Files
	MetricsAddr     string
	Concurrency     int
	ShutdownTimeout time.Duration
	RelayInterval   time.Duration
	RelayBatch      int
	// ReplicaAcks holds outbox rows until replicas have their tasks.
	ReplicaAcks ReplicaAcks
	Fleet
}

// LoadWorker reads cmd/worker's configuration.
func LoadWorker(get Getenv) (Worker, error) {
	l := NewLoader(get)
	c := Worker{
		Base:            loadBase(l),
		Postgres:        loadPostgres(l),
		Redis:           loadRedis(l),
		App:             loadApp(l),
		Plans:           loadPlans(l),
		Stripe:          loadStripe(l),
		Files:           loadFiles(l),
		MetricsAddr:     l.Addr("METRICS_ADDR", ":9091"),
		Concurrency:     l.Int("WORKER_CONCURRENCY", 10, 1, 1000),
		ShutdownTimeout: l.Duration("SHUTDOWN_TIMEOUT", 20*time.Second, time.Second),
		RelayInterval:   l.Duration("OUTBOX_RELAY_INTERVAL", 500*time.Millisecond, 10*time.Millisecond),
		RelayBatch:      l.Int("OUTBOX_RELAY_BATCH", 100, 1, 10000),
		ReplicaAcks:     loadReplicaAcks(l),
	}
	c.Mail = loadMail(l, c.Env)
	c.Fleet = loadFleet(l, c.Concurrency)
	return c, l.Err()
}

// Scheduler is cmd/scheduler's configuration.
type Scheduler struct {
	Base
	Postgres
	Redis
	MetricsAddr     string
	ShutdownTimeout time.Duration
	TestClock       TestClock
	// Schedules overrides periodic entries' cron specs, by task type:
	// BACKUP_TAKE_SCHEDULE and BACKUP_VERIFY_SCHEDULE ("off" removes one).
	Schedules map[string]string
}

// scheduleVars are the periodic entries whose schedule ops may set, and the
// variable that sets each.
var scheduleVars = []struct{ key, typ string }{
	{"BACKUP_TAKE_SCHEDULE", "backup:take"},
	{"BACKUP_VERIFY_SCHEDULE", "backup:verify"},
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

func loadSchedules(l *Loader) map[string]string {
	out := map[string]string{}
	for _, v := range scheduleVars {
		spec, ok := l.lookup(v.key)
		if !ok || spec == "" {
			continue
		}
		if spec != "off" {
			if _, err := cronParser.Parse(spec); err != nil {
				l.fail(v.key, "must be a 5-field cron spec in UTC such as \"0 3 * * *\", or off, got %q: %v", spec, err)
				continue
			}
		}
		out[v.typ] = spec
	}
	return out
}

// TestClock speeds the scheduler's clock up so an end-to-end test sees many
// slots of the real schedule in seconds: the clock reads Origin + Rate ×
// (time since Origin). Replicas given the same values agree on the time.
// Refused unless ENV=test; Rate 1 (the default) is the real clock.
type TestClock struct {
	Rate   int       // SCHEDULER_TEST_CLOCK_RATE
	Origin time.Time // SCHEDULER_TEST_CLOCK_ORIGIN, RFC 3339; required with a Rate above 1
}

func loadTestClock(l *Loader, env string) TestClock {
	const rateKey, originKey = "SCHEDULER_TEST_CLOCK_RATE", "SCHEDULER_TEST_CLOCK_ORIGIN"
	if env != "test" {
		for _, k := range []string{rateKey, originKey} {
			if _, ok := l.lookup(k); ok {
				l.fail(k, "is for tests only: refused unless ENV=test")
			}
		}
	}
	c := TestClock{Rate: l.Int(rateKey, 1, 1, 3600)}
	if v, ok := l.lookup(originKey); ok {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			l.fail(originKey, "must be a time such as 2026-11-26T09:00:00Z, got %q", v)
		}
		c.Origin = t
	} else if c.Rate > 1 {
		l.fail(originKey, "is required with %s", rateKey)
	}
	return c
}

// LoadScheduler reads cmd/scheduler's configuration.
func LoadScheduler(get Getenv) (Scheduler, error) {
	l := NewLoader(get)
	c := Scheduler{
		Base:            loadBase(l),
		Postgres:        loadPostgres(l),
		Redis:           loadRedis(l),
		MetricsAddr:     l.Addr("METRICS_ADDR", ":9092"),
		ShutdownTimeout: l.Duration("SHUTDOWN_TIMEOUT", 10*time.Second, time.Second),
	}
	c.TestClock = loadTestClock(l, c.Env)
	c.Schedules = loadSchedules(l)
	return c, l.Err()
}

// Ctl is keelctl's configuration. Which parts are required depends on the
// command, so each command asks for what it needs.
type Ctl struct {
	Base
	l *Loader
}

// LoadCtl reads the variables every keelctl command shares.
func LoadCtl(get Getenv) (*Ctl, error) {
	l := NewLoader(get)
	c := &Ctl{Base: loadBase(l), l: l}
	return c, l.Err()
}

// Migrate is what `keelctl migrate` needs: the owner to run DDL as, and the
// application role to create and grant.
type Migrate struct {
	OwnerURL string
	AppURL   string
	// AdminURL (ADMIN_DATABASE_URL, optional) names the platform admin's
	// cross-tenant role; migrate creates and grants it when set.
	AdminURL string
}

// Migrate reads DATABASE_OWNER_URL, DATABASE_URL and ADMIN_DATABASE_URL.
func (c *Ctl) Migrate() (Migrate, error) {
	l := NewLoader(c.l.get)
	m := Migrate{
		OwnerURL: l.URL("DATABASE_OWNER_URL", "", true, "postgres", "postgresql"),
		AppURL:   l.URL("DATABASE_URL", "", true, "postgres", "postgresql"),
	}
	m.AdminURL = loadAdminURL(l, m.AppURL)
	return m, l.Err()
}

// Admin is what `keelctl admin grant|revoke` needs: ADMIN_DATABASE_URL,
// the platform admin's role, the only role that may change the admin flag
// and write the platform audit row that records who did.
func (c *Ctl) Admin() (string, error) {
	l := NewLoader(c.l.get)
	u := loadAdminURL(l, l.String("DATABASE_URL", ""))
	if _, set := l.lookup("ADMIN_DATABASE_URL"); !set {
		l.fail("ADMIN_DATABASE_URL", "is required: keelctl admin connects as the platform admin's role that keelctl migrate up creates from it (docs/admin.md)")
	}
	return u, l.Err()
}

// SeedAdmin is what seed-demo's platform admin needs, both optional:
// ADMIN_DATABASE_URL (only that role sets the admin flag) and
// TOTP_ENCRYPTION_KEY (to seal the admin's TOTP secret as the api does).
// Either empty: seed-demo makes no platform admin.
func (c *Ctl) SeedAdmin() (adminURL string, totpKey []byte, err error) {
	l := NewLoader(c.l.get)
	adminURL = loadAdminURL(l, l.String("DATABASE_URL", ""))
	totpKey = l.Key("TOTP_ENCRYPTION_KEY", false, 32, 32)
	return adminURL, totpKey, l.Err()
}

// Doctor is what `keelctl doctor` checks.
type Doctor struct {
	Postgres
	Redis
	Mail
	OwnerURL string
}

// Doctor reads every dependency's settings.
func (c *Ctl) Doctor() (Doctor, error) {
	l := NewLoader(c.l.get)
	d := Doctor{Postgres: loadPostgres(l), Redis: loadRedis(l), Mail: loadMail(l, c.Env),
		OwnerURL: l.URL("DATABASE_OWNER_URL", "", false, "postgres", "postgresql")}
	return d, l.Err()
}

// String renders a config-safe summary of a URL for logs.
func (p Postgres) String() string { return fmt.Sprintf("postgres(%s)", Redact(p.URL)) }

// loadAdminDatabase reads ADMIN_DATABASE_URL, which must name another role
// than DATABASE_URL, and refuses ADMIN_QUEUES_TOKEN: the queue UI now opens
// only to a platform admin's 2FA login, and a token left in the
// environment must not look as if it still worked.
func loadAdminDatabase(l *Loader, appURL string) string {
	u := loadAdminURL(l, appURL)
	for _, k := range slices.Sorted(maps.Keys(Retired)) {
		if l.String(k, "") != "" {
			l.fail(k, "%s", Retired[k])
		}
	}
	return u
}

// Retired are the api's variables that Keel no longer reads, with why: the
// api refuses to start with one set, so a setting left in an environment
// cannot look as if it still worked. Variables leaves them out.
var Retired = map[string]string{
	"ADMIN_QUEUES_TOKEN": "is no longer used: the queue UI at /admin/queues opens to platform admins logged in with 2FA (docs/admin.md); unset it",
}

// loadAdminURL reads ADMIN_DATABASE_URL (optional) and refuses it when it
// names DATABASE_URL's role: the application role must never bypass Row
// Level Security, and migrate would otherwise grant it just that.
func loadAdminURL(l *Loader, appURL string) string {
	u := l.URL("ADMIN_DATABASE_URL", "", false, "postgres", "postgresql")
	if u != "" && appURL != "" {
		a, err1 := url.Parse(u)
		b, err2 := url.Parse(appURL)
		if err1 == nil && err2 == nil && a.User.Username() == b.User.Username() {
			l.fail("ADMIN_DATABASE_URL", "must connect as its own role (it bypasses Row Level Security), not DATABASE_URL's %q", b.User.Username())
		}
	}
	return u
}
