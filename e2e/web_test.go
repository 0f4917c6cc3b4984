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
	"github.com/keelhq/keel/internal/platform/tooltest"
)

// TestWebAppInABrowser runs web/tests/browser.mjs (playwright-core driving
// Debian's Chromium) against the api serving the built app (WEB_DIR) in
// cookie mode, and a worker that mails through a private Mailpit: sign-up,
// the emailed verification link, login, organization creation, a resource
// edited from two tabs, a teammate invited who accepts in a second browser
// profile, the seat limit, an API key shown once. scripts/test.sh builds
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
	var base string
	for try := 1; ; try++ {
		addr := freeAddr(t)
		base = "http://" + addr
		// Email links open the app, which the api serves on its own origin.
		p := proctest.Start(t, bin("api"), s.env("HTTP_ADDR", addr, "METRICS_ADDR", freeAddr(t),
			"APP_BASE_URL", base, "AUTH_REFRESH_COOKIE", "true", "WEB_DIR", filepath.Join(web, "dist")))
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
	worker := freeAddr(t)
	pw := proctest.Start(t, bin("worker"), s.env("METRICS_ADDR", worker, "APP_BASE_URL", base))
	pw.WaitStatus(t, "http://"+worker+"/readyz", 200, 15*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "tests/browser.mjs")
	cmd.Dir = web
	cmd.Env = proctest.Env("KEEL_URL", base, "MAILPIT_URL", s.mail.APIURL, "CHROMIUM", chromium,
		"ARTIFACTS", filepath.Join(web, "test-results"))
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("browser tests (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("browser tests failed: %v", err)
	}
}
