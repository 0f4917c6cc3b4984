package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/proctest"
	"github.com/keelhq/keel/internal/platform/s3test"
	"github.com/keelhq/keel/internal/platform/stripetest"
	"github.com/keelhq/keel/internal/platform/tooltest"
)

// TestWebAppInABrowser runs web/tests/browser.mjs (playwright-core driving
// Debian's Chromium) against the api serving the built app (WEB_DIR) in
// cookie mode, and a worker, with a private Mailpit, S3 server and
// stripe-mock: the suites core (sign-up to the team screens), files,
// billing, account and admin (docs/web.md, "Tests"). scripts/test.sh builds
// web/ first (npm ci, npm run build); screenshots land in web/test-results/.
func TestWebAppInABrowser(t *testing.T) {
	t.Parallel()
	root, err := tooltest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(root, "web")
	for _, need := range []string{"dist/index.html", "node_modules/playwright-core"} {
		if _, err := os.Stat(filepath.Join(web, need)); err != nil {
			t.Fatalf("web/%s is missing: run `cd web && npm ci && npm run build` (make test does)", need)
		}
	}
	// Debian's package, unless CHROMIUM names another build (scripts/lib.sh).
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: make test installs Debian's chromium package (scripts/lib.sh ensure_web)", chromium)
	}

	s := newStack(t)
	// The platform admin's role too, for the admin screens.
	admin := []string{"ADMIN_DATABASE_URL", s.db.PlatformURL}
	if code, out, _ := proctest.Run(t, time.Minute, bin("keelctl"), s.ctlEnv(admin...), "migrate", "up"); code != 0 {
		t.Fatalf("keelctl migrate up with ADMIN_DATABASE_URL: exit %d\n%s", code, out)
	}
	// Files go to a private S3 server, billing to stripe-mock; both are
	// reached by api and worker exactly as in production.
	store := s3test.Start(t, "keel-web-files")
	stripe := stripetest.Start(t)
	services := []string{
		"S3_ENDPOINT", store.Endpoint, "S3_REGION", "us-east-1", "S3_BUCKET", store.Bucket,
		"S3_ACCESS_KEY_ID", s3test.AccessKey, "S3_SECRET_ACCESS_KEY", s3test.SecretKey,
		"STRIPE_API_BASE", stripe.URL, "STRIPE_SECRET_KEY", stripetest.SecretKey,
		"STRIPE_WEBHOOK_SECRET", stripetest.WebhookSecret,
		admin[0], admin[1],
	}
	var base string
	for try := 1; ; try++ {
		addr := freeAddr(t)
		base = "http://" + addr
		// Email links open the app, which the api serves on its own origin.
		p := proctest.Start(t, bin("api"), s.env(append([]string{"HTTP_ADDR", addr, "METRICS_ADDR", freeAddr(t),
			"APP_BASE_URL", base, "AUTH_REFRESH_COOKIE", "true", "WEB_DIR", filepath.Join(web, "dist")}, services...)...))
		_, err := p.Await(base+"/readyz", 200, 15*time.Second)
		if err == nil {
			break
		}
		if try < 3 && strings.Contains(p.Output(), "address already in use") {
			p.Kill()
			continue
		}
		t.Fatalf("api: %v\n%s", err, p.Output())
	}
	// The bucket lets the app's origin upload and download (a cross-origin
	// PUT from the page), set through the S3 API as in production.
	if code, out, _ := proctest.Run(t, time.Minute, bin("keelctl"), s.ctlEnv(services...), "files", "cors", base); code != 0 {
		t.Fatalf("keelctl files cors: exit %d\n%s", code, out)
	}
	worker := freeAddr(t)
	pw := proctest.Start(t, bin("worker"), s.env(append([]string{"METRICS_ADDR", worker, "APP_BASE_URL", base}, services...)...))
	pw.WaitStatus(t, "http://"+worker+"/readyz", 200, 15*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "tests/browser.mjs")
	cmd.Dir = web
	// The suites run keelctl (KEELCTL) with the owner's settings, e.g. to
	// grant platform admin, and sign Stripe events with the webhook secret.
	cmd.Env = s.ctlEnv(append([]string{"KEEL_URL", base, "MAILPIT_URL", s.mail.APIURL, "CHROMIUM", chromium,
		"ARTIFACTS", filepath.Join(web, "test-results"), "KEELCTL", bin("keelctl"),
		"BROWSER_SUITES", os.Getenv("BROWSER_SUITES")}, services...)...)
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("browser tests (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("browser tests failed: %v", err)
	}
}
