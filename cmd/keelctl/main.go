// Command keelctl is the operator's CLI: migrations, dependency checks and
// the commands later capabilities add.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/demo"
	"github.com/keelhq/keel/internal/doctor"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/internal/migrate"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/mail"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/redis"
)

const usage = `usage: keelctl COMMAND

commands:
  migrate up       apply pending migrations as DATABASE_OWNER_URL and provision the
                   application role named in DATABASE_URL
  migrate down     roll back the latest migration (and re-grant the application role)
  migrate redo     roll back the latest migration and apply it again
  migrate status   list migrations and whether each is applied
  migrate reset    roll back every migration (drops all of Keel's tables)
  doctor           check PostgreSQL (and that the application role cannot escape
                   Row Level Security), migrations, Redis and SMTP
  seed-demo        create a demo organization with an owner, an admin and a member,
                   a second organization and invitations, and with ADMIN_DATABASE_URL
                   and TOTP_ENCRYPTION_KEY a platform admin with 2FA; prints the logins
                   and its TOTP secret (a second run changes nothing; refused with
                   ENV=production)
  gen-keys         print fresh JWT_SIGNING_KEY and TOTP_ENCRYPTION_KEY lines for an
                   env file (e.g. keelctl gen-keys >> .env)
  openapi          print the API's OpenAPI document, as served at /api/v1/openapi.json
                   (web/ generates its API client from it: npm run gen)
` + adminUsage + fleetUsage + filesUsage + stripeUsage

// errUsage marks a command-line mistake: exit code 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// go-redis reports failed dials itself: as a log line, not bare text.
	// Here rather than in run, which tests call side by side.
	redis.RouteLibraryLogs(logging.New(os.Stderr, "warn", "console", "keelctl"))
	err := run(ctx, os.Args[1:], os.Stdout)
	switch {
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stderr, err.Error()[len("usage: "):]+"\n\n"+usage)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "keelctl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(out, usage)
		return nil
	}
	if args[0] == "gen-keys" {
		return runGenKeys(out)
	}
	// No configuration: the document is built into the binary, and web/'s
	// client generator runs it on a machine with no stack set up.
	if args[0] == "openapi" {
		doc, err := httpapi.DocumentJSON()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", doc)
		return err
	}
	cfg, err := config.LoadCtl(nil)
	if err != nil {
		return err
	}
	switch args[0] {
	case "migrate":
		return runMigrate(ctx, cfg, args[1:], out)
	case "doctor":
		return runDoctor(ctx, cfg, out)
	case "seed-demo":
		return runSeedDemo(ctx, cfg, out)
	case "admin":
		return runAdmin(ctx, cfg, args[1:], out)
	case "tasks":
		return runTasks(ctx, cfg, args[1:], out)
	case "jobs":
		return runJobs(ctx, cfg, args[1:], out)
	case "backup":
		return runBackup(ctx, cfg, args[1:], out)
	case "files":
		return runFiles(ctx, cfg, args[1:], out)
	case "stripe":
		return runStripe(ctx, cfg, args[1:], out)
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func runMigrate(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: migrate needs one of up, down, redo, status, reset", errUsage)
	}
	mc, err := cfg.Migrate()
	if err != nil {
		return err
	}
	m, err := migrate.New(mc.OwnerURL)
	if err != nil {
		return err
	}
	defer m.Close()
	switch args[0] {
	case "up":
		if err := m.Up(ctx, out); err != nil {
			return err
		}
		if err := m.EnsureRoles(ctx, mc.AppURL, mc.AdminURL); err != nil {
			return err
		}
		fmt.Fprintln(out, "application role ready")
		if mc.AdminURL != "" {
			fmt.Fprintln(out, "platform admin role ready")
		}
		return nil
	case "down":
		// A migration's Down may recreate a function with default
		// privileges; the grants are the same job as after up.
		if err := m.Down(ctx, out); err != nil {
			return err
		}
		return m.EnsureRoles(ctx, mc.AppURL, mc.AdminURL)
	case "redo":
		if err := m.Redo(ctx, out); err != nil {
			return err
		}
		return m.EnsureRoles(ctx, mc.AppURL, mc.AdminURL)
	case "status":
		return m.Status(ctx, out)
	case "reset":
		return m.DownAll(ctx, out)
	}
	return fmt.Errorf("%w: unknown migrate command %q", errUsage, args[0])
}

// errSeedInProduction: the demo's accounts share a published password.
var errSeedInProduction = errors.New("seed-demo refuses to run with ENV=production: it creates accounts whose password is printed and published")

func runSeedDemo(ctx context.Context, cfg *config.Ctl, out io.Writer) error {
	if cfg.Env == "production" {
		return errSeedInProduction
	}
	pc, err := cfg.Seed()
	if err != nil {
		return err
	}
	db, err := postgres.Open(pc.URL, postgres.Options{MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	plans, err := cfg.Plans()
	if err != nil {
		return err
	}
	if err := demo.SeedPlans(ctx, db, plans.Catalog, out); err != nil {
		return err
	}
	files, err := demoFiles(ctx, cfg, db)
	if err != nil {
		return err
	}
	if err := demo.SeedFile(ctx, db, files, out); err != nil {
		return err
	}
	return seedPlatformAdmin(ctx, cfg, db, out)
}

// seedPlatformAdmin adds the demo platform admin when ADMIN_DATABASE_URL
// and TOTP_ENCRYPTION_KEY are set (make dev sets both).
func seedPlatformAdmin(ctx context.Context, cfg *config.Ctl, app *sqlx.DB, out io.Writer) error {
	adminURL, key, err := cfg.SeedAdmin()
	if err != nil {
		return err
	}
	if adminURL == "" || key == nil {
		fmt.Fprintln(out, "No demo platform admin: set ADMIN_DATABASE_URL and TOTP_ENCRYPTION_KEY for one (docs/admin.md).")
		return nil
	}
	box, err := auth.NewSecretBox(key)
	if err != nil {
		return err
	}
	adminDB, err := postgres.Open(adminURL, postgres.Options{MaxOpenConns: 1})
	if err != nil {
		return err
	}
	defer adminDB.Close()
	return demo.SeedPlatformAdmin(ctx, app, adminDB, box, out)
}

// runGenKeys prints new random secrets in the format config expects, so a
// developer (or `make dev`) can create an env file without inventing keys.
func runGenKeys(out io.Writer) error {
	for _, name := range []string{"JWT_SIGNING_KEY", "TOTP_ENCRYPTION_KEY"} {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s=%s\n", name, base64.RawURLEncoding.EncodeToString(b))
	}
	return nil
}

func runDoctor(ctx context.Context, cfg *config.Ctl, out io.Writer) error {
	dc, err := cfg.Doctor()
	if err != nil {
		return err
	}
	db, err := postgres.Open(dc.Postgres.URL, postgres.Options{MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	rdb := redis.New(dc.Redis.Conn)
	defer rdb.Close()
	smtp, err := mail.NewSMTP(dc.SMTPURL, dc.From)
	if err != nil {
		return err
	}
	checks := []doctor.Check{
		doctor.Postgres(db),
		doctor.Migrations(db),
		{Name: "redis", Probe: func(ctx context.Context) (string, error) {
			if err := redis.Ping(ctx, rdb); err != nil {
				return "", err
			}
			info, err := rdb.ConfigGet(ctx, "maxmemory-policy").Result()
			if err == nil && info["maxmemory-policy"] != "" && info["maxmemory-policy"] != "noeviction" {
				return "", fmt.Errorf("maxmemory-policy is %s; queues need noeviction or tasks can vanish", info["maxmemory-policy"])
			}
			return "PONG", nil
		}},
		{Name: "smtp", Probe: func(ctx context.Context) (string, error) {
			if err := smtp.Ping(ctx); err != nil {
				return "", err
			}
			return config.Redact(dc.SMTPURL), nil
		}},
	}
	if n := doctor.Run(ctx, out, 3*time.Second, checks); n > 0 {
		return fmt.Errorf("%d check(s) failed", n)
	}
	return nil
}
