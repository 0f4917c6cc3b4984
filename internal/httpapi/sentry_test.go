package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gosentry "github.com/getsentry/sentry-go"

	"github.com/keelhq/keel/internal/platform/sentry"
)

// fakeSentry is an HTTP server that keeps every envelope Sentry's SDK posts.
type fakeSentry struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func startFakeSentry(t *testing.T) *fakeSentry {
	t.Helper()
	f := &fakeSentry{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.bodies = append(f.bodies, string(b))
		f.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSentry) events() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.bodies, "\n")
}

// Panics and 5xx reach Sentry with their route; 4xx do not. Not parallel:
// the Sentry client is process-wide.
func TestServerErrorsAreReportedToSentry(t *testing.T) {
	f := startFakeSentry(t)
	dsn := strings.Replace(f.URL, "http://", "http://publickey@", 1) + "/42"
	if err := sentry.Init(dsn, "test", "r1", "api"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gosentry.CurrentHub().BindClient(nil) })
	s := newServer(t, options{})

	do(s.h, get("/nope"))
	do(s.h, get("/test/error/1"))
	sentry.Flush(2 * time.Second)
	if got := f.events(); got != "" {
		t.Fatalf("4xx reached Sentry: %.300s", got)
	}

	do(s.h, get("/test/panic"))
	do(s.h, get("/test/error/plain", "X-Request-ID", "req-sentry-1"))
	do(s.h, get("/test/fail-as-caller"))
	sentry.Flush(2 * time.Second)
	got := f.events()
	for _, want := range []string{"panic: boom", `"route":"/test/panic"`, "relation users does not exist", `"route":"/test/error/:kind"`,
		`"request_id":"req-sentry-1"`, `"method":"GET"`, "deadlock detected",
		`"org_id":"` + testCallerOrg.String() + `"`, `"user_id":"` + testCallerUser.String() + `"`,
		`"environment":"test"`, `"release":"r1"`} {
		if !strings.Contains(got, want) {
			t.Errorf("Sentry events lack %q:\n%.2000s", want, got)
		}
	}
}
