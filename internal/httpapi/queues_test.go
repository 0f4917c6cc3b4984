package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/health"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/internal/platform/queueui"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/jobs/task"
)

const queuesToken = "0123456789abcdef0123456789abcdef-test"

func mustQueuesRouter(t *testing.T, token string) http.Handler {
	t.Helper()
	h, _ := queuesRouter(t, token)
	return h
}

// queuesRouter is a router with the queue monitor on a private Redis that
// holds one canary task; it also returns the Redis connection options.
func queuesRouter(t *testing.T, token string) (http.Handler, asynq.RedisConnOpt) {
	t.Helper()
	r := redistest.Start(t)
	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	mon, err := queueui.NewMonitor(opt, httpapi.QueuesPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	rdb := r.Client()
	defer rdb.Close()
	if err := queueui.RegisterQueues(context.Background(), rdb, task.Queues); err != nil {
		t.Fatal(err)
	}
	c := asynq.NewClient(opt)
	defer c.Close()
	if _, err := c.Enqueue(asynq.NewTask(task.TypeCanary, []byte(`{}`)), asynq.Queue(task.QueueDefault)); err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Deps{Log: zerolog.Nop(), Health: &health.Checker{}, QueuesUI: mon, AdminQueuesToken: token})
	if err != nil {
		t.Fatal(err)
	}
	return h, opt
}

func doQueues(h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestQueuesUIRequiresToken(t *testing.T) {
	t.Parallel()
	h := mustQueuesRouter(t, queuesToken)
	for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Cookie": "keel_admin_queues=" + queuesToken}} {
		w := doQueues(h, http.MethodGet, "/admin/queues/api/queues", hdr)
		if w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") {
			t.Fatalf("%v: %d %s", hdr, w.Code, w.Header().Get("Content-Type"))
		}
		var p struct{ Code string }
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Code != "admin_token_required" {
			t.Fatalf("problem: %s", w.Body)
		}
	}
	if w := doQueues(mustQueuesRouter(t, ""), http.MethodGet, "/admin/queues", map[string]string{"Authorization": "Bearer "}); w.Code != http.StatusNotFound {
		t.Fatalf("without ADMIN_QUEUES_TOKEN the monitor answered %d", w.Code)
	}
}

// The UI answers with its page, a CSP that allows exactly its own inline
// scripts, and its assets; its JSON API lists the project's queues.
func TestQueuesUIServesAsynqmon(t *testing.T) {
	t.Parallel()
	h := mustQueuesRouter(t, queuesToken)
	bearer := map[string]string{"Authorization": "Bearer " + queuesToken}
	for _, path := range []string{"/admin/queues", "/admin/queues/", "/admin/queues/queues/default"} {
		w := doQueues(h, http.MethodGet, path, bearer)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "<title>Asynq - Monitoring</title>") {
			t.Fatalf("%s: %d %.200s", path, w.Code, w.Body)
		}
		csp := w.Header().Get("Content-Security-Policy")
		for _, m := range regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(w.Body.String(), -1) {
			sum := sha256.Sum256([]byte(m[1]))
			if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
				t.Fatalf("%s: CSP %q does not allow an inline script of the page", path, csp)
			}
		}
		if strings.Contains(csp, "'unsafe-inline' https://fonts.googleapis.com") == false || strings.Contains(csp, "script-src 'self' 'unsafe-inline'") {
			t.Fatalf("CSP: %s", csp)
		}
	}
	page := doQueues(h, http.MethodGet, "/admin/queues", bearer).Body.String()
	js := regexp.MustCompile(`src="(/admin/queues/static/js/[^"]+\.js)"`).FindAllStringSubmatch(page, -1)
	if len(js) == 0 {
		t.Fatal("no script assets on the page")
	}
	for _, m := range js {
		w := doQueues(h, http.MethodGet, m[1], bearer)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/javascript") {
			t.Fatalf("%s: %d %s", m[1], w.Code, w.Header().Get("Content-Type"))
		}
	}

	// ?token= sets the session cookie the UI's XHRs then carry.
	w := doQueues(h, http.MethodGet, "/admin/queues?token="+queuesToken, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/queues" {
		t.Fatalf("token login: %d %q", w.Code, w.Header().Get("Location"))
	}
	cookie := w.Result().Cookies()[0]
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Value == queuesToken {
		t.Fatalf("cookie: %+v", cookie)
	}
	w = doQueues(h, http.MethodGet, "/admin/queues/api/queues", map[string]string{"Cookie": cookie.Name + "=" + cookie.Value})
	if w.Code != http.StatusOK {
		t.Fatalf("api/queues: %d %s", w.Code, w.Body)
	}
	var body struct {
		Queues []struct {
			Queue string `json:"queue"`
			Size  int    `json:"size"`
		} `json:"queues"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, q := range body.Queues {
		names = append(names, q.Queue)
		if q.Queue == task.QueueDefault && q.Size != 1 {
			t.Errorf("default queue size %d, want 1", q.Size)
		}
	}
	for _, q := range task.Queues {
		if !slices.Contains(names, q) {
			t.Fatalf("queue %s missing from %v", q, names)
		}
	}
	w = doQueues(h, http.MethodPost, "/admin/queues/api/queues/default:pause", map[string]string{
		"Cookie": cookie.Name + "=" + cookie.Value, "Origin": "https://evil.example"})
	if w.Code != http.StatusForbidden {
		t.Fatalf("cross-origin action with the cookie: %d", w.Code)
	}
}

// Whatever a payload holds, the queue UI does not show its secrets: keys
// that name one, links with a token and URL passwords are redacted, in
// every task listing and task page, while IDs and names stay readable.
func TestQueuesUIRedactsPayloadSecrets(t *testing.T) {
	t.Parallel()
	h, opt := queuesRouter(t, queuesToken)
	c := asynq.NewClient(opt)
	defer c.Close()
	payload := `{"to":"a@example.com","template":"reset_password","token_id":"0190aaaa-0000-7000-8000-000000000001",` +
		`"data":{"name":"Ada","link":"https://app.keel.test/reset-password?token=SECRET-LINK"},"password":"SECRET-PW",` +
		`"note":"see https://app.keel.test/accept-invitation?token=SECRET-QUERY&x=1 or smtp://u:SECRET-USERINFO@mail.test"}`
	pending, err := c.Enqueue(asynq.NewTask(task.TypeEmailAccount, []byte(payload)), asynq.Queue(task.QueueCritical))
	if err != nil {
		t.Fatal(err)
	}
	archived, err := c.Enqueue(asynq.NewTask(task.TypeEmailAccount, []byte(payload)), asynq.Queue(task.QueueCritical))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	if err := insp.ArchiveTask(task.QueueCritical, archived.ID); err != nil {
		t.Fatal(err)
	}
	bearer := map[string]string{"Authorization": "Bearer " + queuesToken}
	for _, path := range []string{
		"/admin/queues/api/queues/critical/pending_tasks",
		"/admin/queues/api/queues/critical/archived_tasks",
		"/admin/queues/api/queues/critical/tasks/" + pending.ID,
	} {
		w := doQueues(h, http.MethodGet, path, bearer)
		body := w.Body.String()
		if w.Code != http.StatusOK || !strings.Contains(body, "0190aaaa-0000-7000-8000-000000000001") || !strings.Contains(body, "Ada") {
			t.Fatalf("%s: %d %s", path, w.Code, body)
		}
		if strings.Contains(body, "SECRET") {
			t.Errorf("%s shows a secret: %s", path, body)
		}
	}
}
