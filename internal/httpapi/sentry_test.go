package httpapi_test

import (
	"strings"
	"testing"
	"time"

	gosentry "github.com/getsentry/sentry-go"

	"github.com/keelhq/keel/internal/platform/sentry"
	"github.com/keelhq/keel/internal/platform/sentry/sentrytest"
)

// Panics and 5xx reach Sentry with their route; 4xx do not. Not parallel:
// the Sentry client is process-wide.
func TestServerErrorsAreReportedToSentry(t *testing.T) {
	f := sentrytest.Start(t)
	if err := sentry.Init(f.DSN(), "test", "r1", "api"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gosentry.CurrentHub().BindClient(nil) })
	s := newServer(t, options{})

	do(s.h, get("/nope"))
	do(s.h, get("/test/error/1"))
	sentry.Flush(2 * time.Second)
	if got := f.Events(); got != "" {
		t.Fatalf("4xx reached Sentry: %.300s", got)
	}

	do(s.h, get("/test/panic"))
	do(s.h, get("/test/error/plain", "X-Request-ID", "req-sentry-1"))
	do(s.h, get("/test/fail-as-caller"))
	sentry.Flush(2 * time.Second)
	got := f.Events()
	for _, want := range []string{"panic: boom", `"route":"/test/panic"`, "relation users does not exist", `"route":"/test/error/:kind"`,
		`"request_id":"req-sentry-1"`, `"method":"GET"`, "deadlock detected",
		`"org_id":"` + testCallerOrg.String() + `"`, `"user_id":"` + testCallerUser.String() + `"`,
		`"environment":"test"`, `"release":"r1"`} {
		if !strings.Contains(got, want) {
			t.Errorf("Sentry events lack %q:\n%.2000s", want, got)
		}
	}
}
