package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/health"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/internal/httpapi/apitest"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/redis"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/tenant"
)

func TestMain(m *testing.M) {
	redistest.QuietClientLogs()
	os.Exit(postgrestest.Main(m))
}

const allowedOrigin = "https://app.example.com"

type server struct {
	h       http.Handler
	metrics http.Handler // what cmd/api serves on METRICS_ADDR
	redis   *redistest.Server
}

type options struct {
	dbURL      string // a database URL instead of a fresh test database
	production bool
	maxBody    int64
}

// newServer builds the real router over a real database and a private
// Redis, wired the way cmd/api wires it, plus test-only routes.
func newServer(t *testing.T, o options) *server {
	t.Helper()
	var db *sqlx.DB
	if o.dbURL == "" {
		db = postgrestest.New(t).App
	} else {
		var err error
		if db, err = postgres.Open(o.dbURL, postgres.Options{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
	}
	rs := redistest.Start(t)
	conn, err := redis.ParseURL(rs.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.New(conn)
	t.Cleanup(func() { _ = rdb.Close() })
	reg := metrics.NewRegistry()
	if o.maxBody == 0 {
		o.maxBody = 1024
	}
	h, err := httpapi.New(httpapi.Deps{
		Log:                zerolog.Nop(),
		Metrics:            metrics.NewHTTP(reg),
		Health:             health.Stores(db, rdb),
		CORSAllowedOrigins: []string{allowedOrigin},
		MaxBodyBytes:       o.maxBody,
		Production:         o.production,
	})
	if err != nil {
		t.Fatal(err)
	}
	addTestRoutes(t, h)
	return &server{h: h, metrics: metrics.Handler(reg), redis: rs}
}

type echoBody struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	Tags  []string
}

func (b *echoBody) Validate() error {
	if b.Name == "" {
		return apperr.Validation(apperr.FieldError{Field: "name", Message: "is required"})
	}
	return nil
}

// The caller /test/fail-as-caller acts as.
var (
	testCallerUser = uuid.MustParse("0191c3a0-0000-7000-8000-0000000000aa")
	testCallerOrg  = uuid.MustParse("0191c3a0-0000-7000-8000-0000000000bb")
)

// addTestRoutes adds routes that exist only in tests to the real engine,
// behind the real middleware chain.
func addTestRoutes(t *testing.T, h http.Handler) {
	t.Helper()
	r, ok := h.(*gin.Engine)
	if !ok {
		t.Fatalf("httpapi.New returned %T, want *gin.Engine", h)
	}
	r.GET("/test/panic", func(*gin.Context) { panic("boom: SELECT secret FROM internals") })
	r.POST("/test/echo", httpapi.H(func(c *gin.Context) error {
		var b echoBody
		if err := httpapi.BindJSON(c, &b); err != nil {
			return err
		}
		c.JSON(http.StatusOK, b)
		return nil
	}))
	// A failure of a signed-in caller, for what error reports say of them.
	r.GET("/test/fail-as-caller", func(c *gin.Context) {
		p := &tenant.Principal{UserID: testCallerUser, OrgID: testCallerOrg, Role: tenant.RoleMember}
		c.Request = c.Request.WithContext(tenant.WithPrincipal(c.Request.Context(), p))
		httpapi.H(func(*gin.Context) error { return errors.New("pq: deadlock detected") })(c)
	})
	r.GET("/test/error/:kind", httpapi.H(func(c *gin.Context) error {
		switch c.Param("kind") {
		case "plain":
			return errors.New("pq: relation users does not exist")
		case "retry":
			e := apperr.New(apperr.TooManyRequests, "rate_limited", "Slow down.")
			e.RetryAfter = 30
			return e
		}
		k, _ := strconv.Atoi(c.Param("kind"))
		return apperr.New(apperr.Kind(k), "kind_"+c.Param("kind"), "A test error.")
	}))
}

func get(path string, header ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

func do(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var problemSchema = func() *openapi3.Schema {
	doc, err := httpapi.Document()
	if err != nil {
		panic(err)
	}
	return doc.Components.Schemas["Problem"].Value
}()

// checkProblem asserts w is a problem+json document of status and code that
// matches the document's Problem schema and carries the response's request ID.
func checkProblem(t *testing.T, w *httptest.ResponseRecorder, status int, code string) httpapi.Problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var raw any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, w.Body)
	}
	if err := problemSchema.VisitJSON(raw); err != nil {
		t.Errorf("body does not match the Problem schema: %v", err)
	}
	var p httpapi.Problem
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	if p.Status != status || p.Code != code || p.Type != httpapi.ProblemTypeBase+code || p.Title != http.StatusText(status) {
		t.Errorf("problem %+v, want status %d code %s", p, status, code)
	}
	if p.RequestID == "" || p.RequestID != w.Header().Get("X-Request-ID") {
		t.Errorf("problem request_id %q, header %q", p.RequestID, w.Header().Get("X-Request-ID"))
	}
	return p
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	s := newServer(t, options{})
	w := apitest.Do(t, s.h, get("/healthz"))
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"status":"ok"}` || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %s %v", w.Code, w.Body, w.Header())
	}
}

type readiness struct {
	Status string          `json:"status"`
	Checks []health.Result `json:"checks"`
}

func ready(t *testing.T, h http.Handler) (int, readiness, time.Duration) {
	t.Helper()
	start := time.Now()
	w := apitest.Do(t, h, get("/readyz"))
	d := time.Since(start)
	var r readiness
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatalf("readyz body: %v: %s", err, w.Body)
	}
	return w.Code, r, d
}

func failed(r readiness) []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

func TestReadyzFollowsRedis(t *testing.T) {
	t.Parallel()
	s := newServer(t, options{})
	if code, r, _ := ready(t, s.h); code != 200 || r.Status != "ok" || len(r.Checks) != 2 {
		t.Fatalf("ready: %d %+v", code, r)
	}

	s.redis.Stop()
	code, r, d := ready(t, s.h)
	if code != 503 || r.Status != "unavailable" || strings.Join(failed(r), ",") != "redis" {
		t.Fatalf("redis down: %d %+v", code, r)
	}
	if d > 2*time.Second {
		t.Errorf("503 took %s; the acceptance bound is 2 s", d)
	}
	// Why it failed (an address, here) is for the logs, not for whoever
	// can reach /readyz.
	if raw := do(s.h, get("/readyz")).Body.String(); strings.Contains(raw, "127.0.0.1") || strings.Contains(raw, "error") {
		t.Errorf("/readyz tells the caller why: %s", raw)
	}

	// Same handler, same pools: readiness returns once Redis does.
	s.redis.Restart()
	back := time.Now()
	for {
		code, r, _ = ready(t, s.h)
		if code == 200 {
			break
		}
		if time.Since(back) > 5*time.Second {
			t.Fatalf("still %d 5 s after Redis came back: %+v", code, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestReadyzWithUnreachableDatabase(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"nothing listens": "postgres://keel:pw@127.0.0.1:" + strconv.Itoa(redistest.FreePort(t)) + "/keel?sslmode=disable&connect_timeout=5",
		"no such db":      postgrestest.URL("keel_no_such_database_here", "", ""),
	}
	for name, u := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, options{dbURL: u})
			code, r, d := ready(t, s.h)
			if code != 503 || strings.Join(failed(r), ",") != "postgres" {
				t.Fatalf("%d %+v", code, r)
			}
			if d > 2*time.Second {
				t.Errorf("503 took %s; the acceptance bound is 2 s", d)
			}
		})
	}
}

// The router records metrics by route template; they are served on the
// metrics listener (METRICS_ADDR), and the public router has no /metrics.
func TestMetrics(t *testing.T) {
	t.Parallel()
	s := newServer(t, options{})
	apitest.Do(t, s.h, get("/healthz"))
	apitest.Do(t, s.h, get("/healthz"))
	do(s.h, get("/no/such/route/123"))
	do(s.h, get("/test/panic"))
	checkProblem(t, do(s.h, get("/metrics")), 404, "not_found")
	w := do(s.metrics, get("/metrics"))
	body := w.Body.String()
	for _, want := range []string{
		`keel_http_requests_total{method="GET",route="/healthz",status="200"} 2`,
		`keel_http_requests_total{method="GET",route="unmatched",status="404"} 2`,
		`keel_http_requests_total{method="GET",route="/test/panic",status="500"} 1`,
		`keel_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200",le="+Inf"} 2`,
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "/no/such/route") {
		t.Error("an unmatched path became a label value; cardinality is unbounded")
	}
}

func TestUnknownRouteIsProblem(t *testing.T) {
	t.Parallel()
	s := newServer(t, options{})
	for _, r := range []*http.Request{get("/api/v1/nope"), httptest.NewRequest(http.MethodPost, "/healthz", nil), get("/healthz/")} {
		w := do(s.h, r)
		p := checkProblem(t, w, 404, "not_found")
		if p.Instance != r.URL.Path {
			t.Errorf("instance %q, want %q", p.Instance, r.URL.Path)
		}
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestID(t *testing.T) {
	t.Parallel()
	s := newServer(t, options{})
	w := apitest.Do(t, s.h, get("/healthz", "X-Request-ID", "edge-7f3a9c12.trace:1"))
	if got := w.Header().Get("X-Request-ID"); got != "edge-7f3a9c12.trace:1" {
		t.Errorf("sane ID not echoed: %q", got)
	}
	p := checkProblem(t, do(s.h, get("/nope", "X-Request-ID", "client-req-000001")), 404, "not_found")
	if p.RequestID != "client-req-000001" {
		t.Errorf("problem request_id %q", p.RequestID)
	}
	for _, hostile := range []string{"", "short", "has space in it", `"><script>alert(1)</script>`, strings.Repeat("a", 129), "line\\nbreak-injected"} {
		w := apitest.Do(t, s.h, get("/healthz", "X-Request-ID", hostile))
		if got := w.Header().Get("X-Request-ID"); !hexID.MatchString(got) {
			t.Errorf("incoming %q: response ID %q, want a fresh one", hostile, got)
		}
	}
	a := do(s.h, get("/healthz")).Header().Get("X-Request-ID")
	b := do(s.h, get("/healthz")).Header().Get("X-Request-ID")
	if a == b {
		t.Error("two requests got the same ID")
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
	}
	for _, production := range []bool{false, true} {
		s := newServer(t, options{production: production})
		for _, r := range []*http.Request{get("/healthz"), get("/nope"), get("/test/panic"), get("/api/docs")} {
			w := do(s.h, r)
			for k, v := range want {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %s = %q, want %q", r.URL.Path, k, got, v)
				}
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("%s: CSP %q", r.URL.Path, csp)
			}
			hsts := w.Header().Get("Strict-Transport-Security")
			if production != (hsts != "") {
				t.Errorf("%s production=%v: HSTS %q", r.URL.Path, production, hsts)
			}
		}
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	s := newServer(t, options{})

	w := apitest.Do(t, s.h, get("/healthz", "Origin", allowedOrigin))
	if w.Header().Get("Access-Control-Allow-Origin") != allowedOrigin || w.Header().Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "X-Request-ID") {
		t.Errorf("allowed origin: %v", w.Header())
	}
	if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
		t.Errorf("allowed origin: no Vary: Origin")
	}

	for _, origin := range []string{"https://evil.example.com", "https://app.example.com.evil.com", "null", "*"} {
		w := apitest.Do(t, s.h, get("/healthz", "Origin", origin))
		if w.Code != 200 {
			t.Errorf("origin %s: %d", origin, w.Code)
		}
		for k := range w.Header() {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("origin %s got %s", origin, k)
			}
		}
		if w.Header().Get("Vary") != "Origin" {
			t.Errorf("origin %s: Vary %q; a cache could mix refused and allowed answers", origin, w.Header().Get("Vary"))
		}
	}

	pre := httptest.NewRequest(http.MethodOptions, "/api/v1/anything", strings.NewReader(strings.Repeat("x", 4096)))
	pre.Header.Set("Origin", allowedOrigin)
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "Content-Type, Idempotency-Key")
	w = do(s.h, pre)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != allowedOrigin ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Idempotency-Key") ||
		w.Header().Get("Access-Control-Max-Age") == "" {
		t.Errorf("allowed preflight: %d %v", w.Code, w.Header())
	}

	pre.Header.Set("Origin", "https://evil.example.com")
	w = do(s.h, pre)
	if w.Header().Get("Access-Control-Allow-Origin") != "" || w.Header().Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("refused preflight got CORS headers: %v", w.Header())
	}
	if w.Code >= 200 && w.Code < 300 && w.Body.Len() > 0 {
		t.Errorf("refused preflight has a body: %s", w.Body)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	s := newServer(t, options{maxBody: 1024})
	big := `{"name":"` + strings.Repeat("x", 2000) + `"}`

	r := httptest.NewRequest(http.MethodPost, "/test/echo", strings.NewReader(big))
	r.Header.Set("Content-Type", "application/json")
	p := checkProblem(t, do(s.h, r), 413, "body_too_large")
	if !strings.Contains(p.Detail, "1024") {
		t.Errorf("detail %q", p.Detail)
	}

	// No Content-Length (chunked): the limit bites while reading.
	r = httptest.NewRequest(http.MethodPost, "/test/echo", io.NopCloser(strings.NewReader(big)))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/json")
	checkProblem(t, do(s.h, r), 413, "body_too_large")

	r = httptest.NewRequest(http.MethodPost, "/test/echo", strings.NewReader(`{"name":"ok"}`))
	r.Header.Set("Content-Type", "application/json")
	if w := do(s.h, r); w.Code != 200 {
		t.Errorf("small body: %d %s", w.Code, w.Body)
	}
}

func TestPanicRecovery(t *testing.T) {
	t.Parallel()
	s := newServer(t, options{})
	w := do(s.h, get("/test/panic", "X-Request-ID", "panic-request-01"))
	p := checkProblem(t, w, 500, "internal_error")
	if p.RequestID != "panic-request-01" {
		t.Errorf("request_id %q", p.RequestID)
	}
	if strings.Contains(w.Body.String(), "SELECT") || strings.Contains(w.Body.String(), "boom") || strings.Contains(w.Body.String(), "goroutine") {
		t.Errorf("500 leaks the panic: %s", w.Body)
	}
	// The server keeps serving.
	if w := apitest.Do(t, s.h, get("/healthz")); w.Code != 200 {
		t.Fatalf("after a panic: %d", w.Code)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	s := newServer(t, options{})
	want := map[apperr.Kind]int{
		apperr.Internal: 500, apperr.Invalid: 400, apperr.Unauthenticated: 401, apperr.Forbidden: 403,
		apperr.NotFound: 404, apperr.Conflict: 409, apperr.PreconditionFailed: 412, apperr.PaymentRequired: 402,
		apperr.TooManyRequests: 429, apperr.TooLarge: 413, apperr.UnsupportedMedia: 415, apperr.Unavailable: 503,
		apperr.PreconditionRequired: 428,
	}
	for kind, status := range want {
		k := strconv.Itoa(int(kind))
		checkProblem(t, do(s.h, get("/test/error/"+k)), status, "kind_"+k)
	}
	w := do(s.h, get("/test/error/plain"))
	checkProblem(t, w, 500, "internal_error")
	if strings.Contains(w.Body.String(), "pq:") {
		t.Errorf("an internal error leaked: %s", w.Body)
	}
	w = do(s.h, get("/test/error/retry"))
	checkProblem(t, w, 429, "rate_limited")
	if w.Header().Get("Retry-After") != "30" {
		t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
	}
}

func TestBindJSON(t *testing.T) {
	t.Parallel()
	s := newServer(t, options{})
	cases := []struct {
		name, ct, body string
		status         int
		code, field    string
	}{
		{"ok", "application/json", `{"name":"a","count":2}`, 200, "", ""},
		{"ok with charset", "application/json; charset=utf-8", `{"name":"a"}`, 200, "", ""},
		{"unknown field", "application/json", `{"name":"a","admin":true}`, 400, "validation_failed", "admin"},
		{"bad json", "application/json", `{"name":`, 400, "invalid_json", ""},
		{"syntax error", "application/json", `{"name" "a"}`, 400, "invalid_json", ""},
		{"wrong type", "application/json", `{"name":"a","count":"two"}`, 400, "validation_failed", "count"},
		{"not an object", "application/json", `[1,2]`, 400, "invalid_json", ""},
		{"two objects", "application/json", `{"name":"a"}{"name":"b"}`, 400, "invalid_json", ""},
		{"empty", "application/json", ``, 400, "invalid_json", ""},
		{"wrong content type", "text/plain", `{"name":"a"}`, 415, "unsupported_media_type", ""},
		{"form", "application/x-www-form-urlencoded", `name=a`, 415, "unsupported_media_type", ""},
		{"validate", "application/json", `{"count":1}`, 400, "validation_failed", "name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/test/echo", bytes.NewBufferString(tc.body))
			if tc.ct != "" {
				r.Header.Set("Content-Type", tc.ct)
			}
			w := do(s.h, r)
			if tc.status == 200 {
				if w.Code != 200 {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
				return
			}
			p := checkProblem(t, w, tc.status, tc.code)
			if tc.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.field || p.Errors[0].Message == "") {
				t.Errorf("errors %+v, want one for %s", p.Errors, tc.field)
			}
		})
	}
}

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc, err := httpapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	s := newServer(t, options{})
	w := apitest.Do(t, s.h, get("/api/v1/openapi.json"))
	loader := openapi3.NewLoader()
	served, err := loader.LoadFromData(w.Body.Bytes())
	if err != nil {
		t.Fatalf("served document does not load: %v", err)
	}
	if err := served.Validate(context.Background()); err != nil {
		t.Fatalf("served document is invalid: %v", err)
	}

	w = apitest.Do(t, s.h, get("/api/docs"))
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), "/readyz") {
		t.Errorf("docs page: %s %.200s", w.Header().Get("Content-Type"), w.Body)
	}
	if strings.Contains(w.Body.String(), "<script") {
		t.Error("docs page carries a script")
	}

	// Every route the router serves is in the document (the test routes
	// aside), so the document cannot fall behind the code.
	for _, rt := range s.h.(*gin.Engine).Routes() {
		if strings.HasPrefix(rt.Path, "/test/") {
			continue
		}
		item := served.Paths.Find(rt.Path)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("%s %s is served but not documented", rt.Method, rt.Path)
		}
	}
}
