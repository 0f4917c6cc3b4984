package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/config"
)

// valid is the smallest environment every binary accepts.
func valid() map[string]string {
	return map[string]string{
		"DATABASE_URL":       "postgres://app:app-secret@127.0.0.1:5432/keel?sslmode=disable",
		"DATABASE_OWNER_URL": "postgres://owner:owner-secret@127.0.0.1:5432/keel?sslmode=disable",
		"REDIS_URL":          "redis://127.0.0.1:6379/0",
		// api's identity secrets (base64 of 32 bytes).
		"JWT_SIGNING_KEY":     "a2VlbC10ZXN0LWp3dC1zaWduaW5nLWtleS0zMmJ5dGU",
		"TOTP_ENCRYPTION_KEY": "a2VlbC10ZXN0LXRvdHAtZW5jcnlwdGlvbi1rZXktMzI",
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "<unset>" {
			delete(out, kv[i])
			continue
		}
		out[kv[i]] = kv[i+1]
	}
	return out
}

// loaders runs each binary's configuration the way its main does.
var loaders = map[string]func(config.Getenv) error{
	"api": func(g config.Getenv) error { _, err := config.LoadAPI(g); return err },
	"worker": func(g config.Getenv) error {
		_, err := config.LoadWorker(g)
		return err
	},
	"scheduler": func(g config.Getenv) error {
		_, err := config.LoadScheduler(g)
		return err
	},
	"keelctl doctor": func(g config.Getenv) error {
		c, err := config.LoadCtl(g)
		if err != nil {
			return err
		}
		_, err = c.Doctor()
		return err
	},
}

func TestEveryBinaryNamesEveryBadVariableInOneError(t *testing.T) {
	env := with(valid(), "DATABASE_URL", "<unset>", "REDIS_URL", "notaurl")
	for name, load := range loaders {
		t.Run(name, func(t *testing.T) {
			err := load(config.MapEnv(env))
			if err == nil {
				t.Fatal("want an error")
			}
			var ce *config.Error
			if !errors.As(err, &ce) || !config.IsConfigError(err) {
				t.Fatalf("want *config.Error, got %T: %v", err, err)
			}
			if !slices.Equal(ce.Vars, []string{"DATABASE_URL", "REDIS_URL"}) {
				t.Errorf("Vars = %v, want [DATABASE_URL REDIS_URL]", ce.Vars)
			}
			msg := err.Error()
			for _, want := range []string{"DATABASE_URL is required", "REDIS_URL must be a URL", `"notaurl"`} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
		})
	}
}

func TestEveryBinaryAcceptsTheMinimalEnvironment(t *testing.T) {
	for name, load := range loaders {
		t.Run(name, func(t *testing.T) {
			if err := load(config.MapEnv(valid())); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestKeelctlMigrateNeedsBothDatabaseURLs(t *testing.T) {
	c, err := config.LoadCtl(config.MapEnv(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Migrate()
	var ce *config.Error
	if !errors.As(err, &ce) || !slices.Equal(ce.Vars, []string{"DATABASE_OWNER_URL", "DATABASE_URL"}) {
		t.Fatalf("got %v", err)
	}
	c, err = config.LoadCtl(config.MapEnv(valid()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Migrate()
	if err != nil || m.OwnerURL != valid()["DATABASE_OWNER_URL"] || m.AppURL != valid()["DATABASE_URL"] {
		t.Fatalf("got %+v, %v", m, err)
	}
}

func TestDefaults(t *testing.T) {
	api, err := config.LoadAPI(config.MapEnv(valid()))
	if err != nil {
		t.Fatal(err)
	}
	if api.HTTPAddr != ":8080" || api.MetricsAddr != ":9090" || api.MaxBodyBytes != 1<<20 || api.ShutdownTimeout != 15*time.Second ||
		api.CORSAllowedOrigins != nil || api.BaseURL != "http://localhost:8080" || api.JWTIssuer != "http://localhost:8080" {
		t.Errorf("api defaults: %+v", api)
	}
	if api.Env != "development" || api.LogLevel != "info" || api.LogFormat != "console" || api.SentryDSN != "" || api.Release != "dev" {
		t.Errorf("base defaults: %+v", api.Base)
	}
	if api.MaxOpenConns != 20 || api.MaxIdleConns != 20 || api.ConnMaxLifetime != 30*time.Minute {
		t.Errorf("pool defaults: %+v", api.Postgres)
	}
	if api.Unprepared {
		t.Error("prepared statements are off by default")
	}
	if c, err := config.LoadAPI(config.MapEnv(with(valid(), "DATABASE_PREPARED_STATEMENTS", "off"))); err != nil || !c.Unprepared {
		t.Errorf("DATABASE_PREPARED_STATEMENTS=off: %v, %v", c.Unprepared, err)
	}
	_, err = config.LoadAPI(config.MapEnv(with(valid(), "DATABASE_PREPARED_STATEMENTS", "no")))
	wantErr(t, "prepared statements no", err, []string{"DATABASE_PREPARED_STATEMENTS"})
	// The idle pool follows a set pool size unless it is set itself.
	if c, err := config.LoadAPI(config.MapEnv(with(valid(), "DATABASE_MAX_OPEN_CONNS", "50"))); err != nil || c.MaxIdleConns != 50 {
		t.Errorf("idle pool with 50 open: %d, %v", c.MaxIdleConns, err)
	}
	if c, err := config.LoadAPI(config.MapEnv(with(with(valid(), "DATABASE_MAX_OPEN_CONNS", "50"), "DATABASE_MAX_IDLE_CONNS", "5"))); err != nil || c.MaxIdleConns != 5 {
		t.Errorf("idle pool set to 5: %d, %v", c.MaxIdleConns, err)
	}
	if c := api.Redis.Conn; c.Addr != "127.0.0.1:6379" || c.DB != 0 || c.Sentinel() {
		t.Errorf("redis conn: %+v", c)
	}

	w, err := config.LoadWorker(config.MapEnv(with(valid(), "ENV", "production")))
	if err != nil {
		t.Fatal(err)
	}
	if w.MetricsAddr != ":9091" || w.Concurrency != 10 || w.ShutdownTimeout != 20*time.Second ||
		w.RelayInterval != 500*time.Millisecond || w.RelayBatch != 100 ||
		w.SMTPURL != "smtp://127.0.0.1:1025?tls=mandatory" || w.From != "Keel <no-reply@keel.localhost>" {
		t.Errorf("worker defaults: %+v", w)
	}
	if w.LogFormat != "json" {
		t.Errorf("LOG_FORMAT outside development = %q, want json", w.LogFormat)
	}

	s, err := config.LoadScheduler(config.MapEnv(valid()))
	if err != nil {
		t.Fatal(err)
	}
	if s.MetricsAddr != ":9092" || s.ShutdownTimeout != 10*time.Second || s.TestClock.Rate != 1 || !s.TestClock.Origin.IsZero() {
		t.Errorf("scheduler defaults: %+v", s)
	}
}

// The scheduler's sped-up clock exists for end-to-end tests: any other ENV
// refuses both of its variables, even at the real rate.
func TestSchedulerTestClock(t *testing.T) {
	const origin = "2026-11-26T09:00:00.5Z"
	s, err := config.LoadScheduler(config.MapEnv(with(valid(), "ENV", "test",
		"SCHEDULER_TEST_CLOCK_RATE", "30", "SCHEDULER_TEST_CLOCK_ORIGIN", origin)))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 26, 9, 0, 0, 5e8, time.UTC); s.TestClock.Rate != 30 || !s.TestClock.Origin.Equal(want) {
		t.Errorf("TestClock = %+v", s.TestClock)
	}
	cases := []struct {
		name string
		env  []string
		vars []string
		want string
	}{
		{"production", []string{"ENV", "production", "SCHEDULER_TEST_CLOCK_RATE", "30", "SCHEDULER_TEST_CLOCK_ORIGIN", origin},
			[]string{"SCHEDULER_TEST_CLOCK_ORIGIN", "SCHEDULER_TEST_CLOCK_RATE"}, "is for tests only: refused unless ENV=test"},
		{"staging, rate 1", []string{"ENV", "staging", "SCHEDULER_TEST_CLOCK_RATE", "1"},
			[]string{"SCHEDULER_TEST_CLOCK_RATE"}, "is for tests only"},
		{"default ENV, origin only", []string{"SCHEDULER_TEST_CLOCK_ORIGIN", "garbage"},
			[]string{"SCHEDULER_TEST_CLOCK_ORIGIN"}, "is for tests only"},
		{"no origin", []string{"ENV", "test", "SCHEDULER_TEST_CLOCK_RATE", "30"},
			[]string{"SCHEDULER_TEST_CLOCK_ORIGIN"}, "is required with SCHEDULER_TEST_CLOCK_RATE"},
		{"bad origin", []string{"ENV", "test", "SCHEDULER_TEST_CLOCK_RATE", "30", "SCHEDULER_TEST_CLOCK_ORIGIN", "09:00"},
			[]string{"SCHEDULER_TEST_CLOCK_ORIGIN"}, "must be a time"},
		{"bad rate", []string{"ENV", "test", "SCHEDULER_TEST_CLOCK_RATE", "0", "SCHEDULER_TEST_CLOCK_ORIGIN", origin},
			[]string{"SCHEDULER_TEST_CLOCK_RATE"}, "must be a whole number from 1 to 3600"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.LoadScheduler(config.MapEnv(with(valid(), tc.env...)))
			var ce *config.Error
			if !errors.As(err, &ce) || !slices.Equal(ce.Vars, tc.vars) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v naming %q", err, tc.vars, tc.want)
			}
		})
	}
}

func TestSettingsAreRead(t *testing.T) {
	env := with(valid(),
		"ENV", "Staging", "LOG_LEVEL", "debug", "LOG_FORMAT", "console",
		"HTTP_ADDR", "127.0.0.1:0", "HTTP_MAX_BODY_BYTES", "2048", "SHUTDOWN_TIMEOUT", "3s",
		"DATABASE_MAX_OPEN_CONNS", "7", "REDIS_URL", "redis://:pw@10.0.0.1:6380/3",
		"CORS_ALLOWED_ORIGINS", " https://app.example.com , http://localhost:5173 ,")
	api, err := config.LoadAPI(config.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if api.Env != "staging" || api.LogLevel != "debug" || api.LogFormat != "console" || api.HTTPAddr != "127.0.0.1:0" ||
		api.MaxBodyBytes != 2048 || api.ShutdownTimeout != 3*time.Second || api.MaxOpenConns != 7 {
		t.Errorf("got %+v", api)
	}
	if c := api.Redis.Conn; c.Addr != "10.0.0.1:6380" || c.DB != 3 || c.Password != "pw" {
		t.Errorf("redis conn: %+v", c)
	}
	if !slices.Equal(api.CORSAllowedOrigins, []string{"https://app.example.com", "http://localhost:5173"}) {
		t.Errorf("CORS = %q", api.CORSAllowedOrigins)
	}
}

func TestMalformedValues(t *testing.T) {
	cases := []struct {
		name, key, value, want string
	}{
		{"env", "ENV", "prod", "must be one of development, test, staging, production"},
		{"log level", "LOG_LEVEL", "loud", "must be one of"},
		{"log format", "LOG_FORMAT", "xml", "must be one of json, console"},
		{"postgres scheme", "DATABASE_URL", "mysql://u@h/db", "must use scheme postgres or postgresql"},
		{"redis scheme", "REDIS_URL", "http://127.0.0.1:6379", "must use scheme redis, rediss or redis-sentinel"},
		{"redis db", "REDIS_URL", "redis://127.0.0.1:6379/x", "database number"},
		{"addr", "HTTP_ADDR", "8080", "must be host:port or :port"},
		{"port", "HTTP_ADDR", ":http", "must end in a port number"},
		{"int", "DATABASE_MAX_OPEN_CONNS", "many", "must be a whole number from 1 to 1000"},
		{"int range", "HTTP_MAX_BODY_BYTES", "10", "must be a whole number from 1024"},
		{"duration", "SHUTDOWN_TIMEOUT", "10", "must be a duration"},
		{"duration min", "SHUTDOWN_TIMEOUT", "10ms", "at least 1s"},
		{"sentry", "SENTRY_DSN", "not a dsn", "SENTRY_DSN must be a URL"},
		{"base url", "APP_BASE_URL", "ftp://x", "must use scheme http or https"},
		{"cors star", "CORS_ALLOWED_ORIGINS", "*", "* is not allowed with credentials"},
		{"cors path", "CORS_ALLOWED_ORIGINS", "https://app.example.com/", "must be origins such as"},
		{"cors no scheme", "CORS_ALLOWED_ORIGINS", "app.example.com", "must be origins such as"},
		{"cors one bad of two", "CORS_ALLOWED_ORIGINS", "https://ok.example.com,*", "* is not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.LoadAPI(config.MapEnv(with(valid(), tc.key, tc.value)))
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("want a config error, got %v", err)
			}
			if !slices.Equal(ce.Vars, []string{tc.key}) {
				t.Errorf("Vars = %v, want [%s]", ce.Vars, tc.key)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message lacks %q:\n%s", tc.want, err)
			}
		})
	}
}

func TestWorkerAndSchedulerSettings(t *testing.T) {
	cases := []struct{ key, value, want string }{
		{"WORKER_CONCURRENCY", "0", "must be a whole number from 1 to 1000"},
		{"OUTBOX_RELAY_INTERVAL", "1ms", "at least 10ms"},
		{"OUTBOX_RELAY_BATCH", "-1", "must be a whole number"},
		{"SMTP_URL", "mail.example.com:25", "SMTP_URL must"},
		{"METRICS_ADDR", "nope", "must be host:port or :port"},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			_, err := config.LoadWorker(config.MapEnv(with(valid(), tc.key, tc.value)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := config.LoadScheduler(config.MapEnv(with(valid(), "METRICS_ADDR", "127.0.0.1"))); err == nil ||
		!strings.Contains(err.Error(), "METRICS_ADDR") {
		t.Fatalf("scheduler METRICS_ADDR: %v", err)
	}
}

// A config error is printed at start and lands in logs: it must never carry
// a password, however broken the URL around it.
func TestErrorsNeverPrintPasswords(t *testing.T) {
	cases := []struct{ key, value string }{
		{"DATABASE_URL", "mysql://app:hunter2hunter2@db.example.com/keel"},
		{"DATABASE_URL", "postgres://app:hunter2hunter2@db.example.com:notaport/keel"},
		{"DATABASE_URL", "postgres://app:hunter2hunter2@/keel"},
		{"DATABASE_URL", "postgres://app:hunter2hunter2@db.example.com:5432/%zz"},
		{"REDIS_URL", "redis://:hunter2hunter2@cache.example.com:63 79/0"},
		{"REDIS_URL", "redis://:hunter2hunter2@cache.example.com:6379/zero"},
		{"REDIS_URL", "redis-sentinel://:hunter2hunter2@cache.example.com:6379"},
		{"SMTP_URL", "smtp://mailer:hunter2hunter2@smtp.example.com:bad"},
		{"SMTP_URL", "smtp://mailer:hunter2hunter2@"},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			_, err := config.LoadWorker(config.MapEnv(with(valid(), tc.key, tc.value)))
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("message does not name %s: %s", tc.key, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("message leaks the password: %s", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"postgres://app:s3cret@h:5432/db?sslmode=disable": "postgres://app:xxxxx@h:5432/db?sslmode=disable",
		"postgres://app@h/db":                             "postgres://app@h/db",
		"redis://:s3cret@h:6379/0":                        "redis://:xxxxx@h:6379/0",
		"redis://h:6379":                                  "redis://h:6379",
		"":                                                "",
	}
	for in, want := range cases {
		if got := config.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"postgres://app:s3cret@h:bad/db", "postgres://app:s3cr@t@h/db", "redis://:s3cret@h:63 79", "postgres://app:5432?s3cret@h/db"} {
		if got := config.Redact(in); strings.Contains(got, "s3cr") {
			t.Errorf("Redact(%q) = %q leaks the password", in, got)
		}
	}
	p := config.Postgres{URL: "postgres://app:s3cret@h/db"}
	if s := p.String(); strings.Contains(s, "s3cret") {
		t.Errorf("Postgres.String() = %q", s)
	}
}

// Whatever a password holds, unescaped or not, Redact never prints it.
func FuzzRedactHidesPasswords(f *testing.F) {
	for _, pw := range []string{"s3cret", "12345?abc", "ab/cd", "p@ss:word", "x#y", "a b", "%zz", "::", "pw@@"} {
		f.Add("postgres", pw, "db.example.com:5432/keel?sslmode=disable")
		f.Add("redis", pw, "cache:6379/0")
	}
	f.Fuzz(func(t *testing.T, scheme, pw, rest string) {
		const marker = "Qz7"
		if scheme == "" || strings.ContainsAny(scheme, ":/@?#") || strings.Contains(rest, "@") || strings.Contains(rest, marker) || strings.Contains(scheme, marker) {
			t.Skip()
		}
		secret := marker + pw + marker
		got := config.Redact(scheme + "://app:" + secret + "@" + rest)
		if strings.Contains(got, secret) || strings.Contains(got, marker+pw) {
			t.Fatalf("Redact leaks the password: %q", got)
		}
	})
}

// SMTP_URL's STARTTLS policy: unset means opportunistic, except in
// production where it means mandatory; an explicit choice always stands.
func TestSMTPTLSPolicy(t *testing.T) {
	cases := []struct{ env, url, want string }{
		{"production", "smtp://mail.example.com:587", "smtp://mail.example.com:587?tls=mandatory"},
		{"production", "smtp://u:p%40ss@mail.example.com:587", "smtp://u:p%40ss@mail.example.com:587?tls=mandatory"},
		{"production", "smtp://mail.example.com:587?tls=opportunistic", "smtp://mail.example.com:587?tls=opportunistic"},
		{"production", "smtp://relay.internal:25?tls=none", "smtp://relay.internal:25?tls=none"},
		{"production", "smtps://mail.example.com", "smtps://mail.example.com"},
		{"staging", "smtp://mail.example.com:587", "smtp://mail.example.com:587"},
		{"development", "smtp://127.0.0.1:1025", "smtp://127.0.0.1:1025"},
	}
	for _, tc := range cases {
		w, err := config.LoadWorker(config.MapEnv(with(valid(), "ENV", tc.env, "SMTP_URL", tc.url)))
		if err != nil || w.SMTPURL != tc.want {
			t.Errorf("ENV=%s SMTP_URL=%s: got %q, %v; want %q", tc.env, tc.url, w.SMTPURL, err, tc.want)
		}
	}
	_, err := config.LoadWorker(config.MapEnv(with(valid(), "SMTP_URL", "smtp://u:hunter2@mail.example.com?tls=sometimes")))
	if err == nil || !strings.Contains(err.Error(), "SMTP_URL") || !strings.Contains(err.Error(), "tls must be") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad tls: %v", err)
	}
}

// The api serves metrics on METRICS_ADDR only, never on its public port.
func TestAPIMetricsAddrAndIssuer(t *testing.T) {
	_, err := config.LoadAPI(config.MapEnv(with(valid(), "HTTP_ADDR", ":8080", "METRICS_ADDR", ":8080")))
	if err == nil || !strings.Contains(err.Error(), "METRICS_ADDR must differ from HTTP_ADDR") {
		t.Errorf("same address: %v", err)
	}
	api, err := config.LoadAPI(config.MapEnv(with(valid(), "METRICS_ADDR", "127.0.0.1:9100",
		"APP_BASE_URL", "https://app.example.com", "JWT_ISSUER", "https://id.example.com")))
	if err != nil || api.MetricsAddr != "127.0.0.1:9100" || api.JWTIssuer != "https://id.example.com" {
		t.Errorf("%+v %v", api, err)
	}
	api, err = config.LoadAPI(config.MapEnv(with(valid(), "APP_BASE_URL", "https://app.example.com")))
	if err != nil || api.JWTIssuer != "https://app.example.com" {
		t.Errorf("JWT_ISSUER default %q, %v; want APP_BASE_URL", api.JWTIssuer, err)
	}
}
