package health_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/health"
)

// A probe that hangs cannot hold /readyz past the checker's timeout, and
// the answer names it.
func TestReadyBoundsHangingProbes(t *testing.T) {
	t.Parallel()
	c := &health.Checker{Timeout: 100 * time.Millisecond, Checks: []health.Check{
		{Name: "fast", Probe: func(context.Context) error { return nil }},
		{Name: "hangs", Probe: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		{Name: "fails", Probe: func(context.Context) error { return errors.New("refused") }},
	}}
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		c.Ready(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		done <- w
	}()
	var w *httptest.ResponseRecorder
	select {
	case w = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Ready waited on a hanging probe")
	}
	var body struct {
		Status string          `json:"status"`
		Checks []health.Result `json:"checks"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if w.Code != 503 || body.Status != "unavailable" || len(body.Checks) != 3 {
		t.Fatalf("%d %+v", w.Code, body)
	}
	want := []health.Result{{Name: "fast", OK: true}, {Name: "hangs"}, {Name: "fails"}}
	for i, r := range body.Checks {
		if r != want[i] {
			t.Errorf("check %d = %+v, want %+v", i, r, want[i])
		}
	}
}

// A failed check's error (here one naming a host and a role, as
// PostgreSQL's do) goes to the log, never into the response.
func TestReadyKeepsErrorsInTheLog(t *testing.T) {
	t.Parallel()
	const secret = `pq: password authentication failed for user "keel_app" at db.internal:5432`
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	c := &health.Checker{Log: &log, Checks: []health.Check{
		{Name: "postgres", Probe: func(context.Context) error { return errors.New(secret) }},
	}}
	w := httptest.NewRecorder()
	c.Ready(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if w.Code != 503 || !strings.Contains(w.Body.String(), `"name":"postgres","ok":false`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for _, leak := range []string{"keel_app", "db.internal", "password"} {
		if strings.Contains(w.Body.String(), leak) {
			t.Errorf("/readyz tells the caller %q: %s", leak, w.Body)
		}
	}
	if !strings.Contains(logs.String(), "db.internal:5432") || !strings.Contains(logs.String(), `"check":"postgres"`) {
		t.Errorf("the log lacks the error: %s", logs.String())
	}
}

func TestMux(t *testing.T) {
	t.Parallel()
	c := &health.Checker{Checks: []health.Check{{Name: "ok", Probe: func(context.Context) error { return nil }}}}
	m := health.Mux(c, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics")) }))
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/other": 404} {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != want {
			t.Errorf("%s: %d, want %d", path, w.Code, want)
		}
	}
	w := httptest.NewRecorder()
	m.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/readyz", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz: %d", w.Code)
	}
}
