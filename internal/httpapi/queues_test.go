package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/jobs/task"
)

// queueRefused fails t unless the queue UI answered w with 401
// admin_session_required as problem+json.
func queueRefused(t *testing.T, what string, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != http.StatusUnauthorized || w.Header().Get("Content-Type") != "application/problem+json" || problemCode(w) != "admin_session_required" {
		t.Errorf("%s: %d %s %s, want 401 admin_session_required", what, w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}

// The queue UI opens only with the session cookie of a platform admin
// whose login used TOTP: no cookie, a forged or tampered one, an expired
// one, or one whose admin has since been revoked or disabled is refused;
// a regular user and a support-access token cannot open a session.
func TestQueuesUISession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{queuesUI: true})
	a := e.newPlatformAdmin("ada@example.com")
	const api = "/admin/queues/api/queues"

	queueRefused(t, "no cookie", doQueues(e.h, http.MethodGet, api, nil))
	queueRefused(t, "no cookie, the page", doQueues(e.h, http.MethodGet, httpapi.QueuesPath, nil))
	queueRefused(t, "an admin access token instead of the cookie", doQueues(e.h, http.MethodGet, api, map[string]string{"Authorization": "Bearer " + a.AccessToken}))

	var opened struct {
		QueuesURL string    `json:"queues_url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	w := e.expect(req{method: "POST", path: "/api/v1/admin/queues/session", token: a.AccessToken}, 200, &opened)
	if opened.QueuesURL != httpapi.QueuesPath || opened.ExpiresAt.Sub(e.clock.Now()) > admin.QueueSessionTTL || opened.ExpiresAt.Sub(e.clock.Now()) < admin.QueueSessionTTL-2*time.Second {
		t.Errorf("session answer %+v at %s", opened, e.clock.Now())
	}
	var cookie *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "keel_admin_queues" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("no cookie: %v", w.Header())
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != httpapi.QueuesPath ||
		cookie.MaxAge != int(admin.QueueSessionTTL.Seconds()) || cookie.Domain != "" {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/admin/queues, 30 minutes, host-only", cookie)
	}
	if strings.Contains(cookie.Value, a.AccessToken) || strings.Contains(a.AccessToken, cookie.Value) {
		t.Error("the cookie carries the access token")
	}
	// The cookie is no credential for the API.
	e.problem(req{method: "GET", path: "/api/v1/me", token: cookie.Value}, 401, "invalid_token")
	var audited int
	if err := e.db.Owner.Get(&audited, `SELECT count(*) FROM audit_log WHERE org_id IS NULL AND action = 'admin.queues_opened'
		AND actor_user_id = $1`, a.UserID); err != nil || audited != 1 {
		t.Errorf("%d platform audit rows admin.queues_opened (%v)", audited, err)
	}
	if w := doQueues(e.h, http.MethodGet, api, nil, cookie); w.Code != http.StatusOK {
		t.Fatalf("with the cookie: %d %s", w.Code, w.Body)
	}

	// Forged and tampered values.
	body := a.UserID.String() + "|" + strconv.FormatInt(e.clock.Now().Add(time.Hour).Unix(), 10)
	enc := base64.RawURLEncoding.EncodeToString([]byte(body))
	value, mac, _ := strings.Cut(cookie.Value, ".")
	for what, v := range map[string]string{
		"a forged signature":               enc + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32)),
		"a later expiry under the old mac": enc + "." + mac,
		"another admin's ID under the mac": base64.RawURLEncoding.EncodeToString([]byte(uuid.NewString()+"|"+strconv.FormatInt(e.clock.Now().Add(time.Hour).Unix(), 10))) + "." + mac,
		"no signature":                     value,
		"an empty value":                   "",
		"garbage":                          "%%%.%%%",
	} {
		queueRefused(t, what, doQueues(e.h, http.MethodGet, api, nil, &http.Cookie{Name: cookie.Name, Value: v}))
	}

	// Expiry follows the API's clock.
	e.clock.Advance(admin.QueueSessionTTL + time.Minute)
	queueRefused(t, "an expired session", doQueues(e.h, http.MethodGet, api, nil, cookie))

	// The account is read on every request: a revoked admin's session is
	// refused (and works again only while granted, within its 30 minutes),
	// a disabled admin's is refused.
	a.session = e.loginTOTP(a.Email, a.Secret)
	fresh := e.queueSession(a)
	if w := doQueues(e.h, http.MethodGet, api, nil, fresh); w.Code != http.StatusOK {
		t.Fatalf("a fresh session: %d %s", w.Code, w.Body)
	}
	e.grantAdmin(a.Email, false)
	queueRefused(t, "a revoked admin's session", doQueues(e.h, http.MethodGet, api, nil, fresh))
	e.grantAdmin(a.Email, true)
	if w := doQueues(e.h, http.MethodGet, api, nil, fresh); w.Code != http.StatusOK {
		t.Fatalf("granted again: %d %s", w.Code, w.Body)
	}
	e.db.Owner.MustExec(`UPDATE users SET disabled_at = now() WHERE id = $1`, a.UserID)
	queueRefused(t, "a disabled admin's session", doQueues(e.h, http.MethodGet, api, nil, fresh))

	// Only an admin can open one.
	owner := e.signup("olga@example.com", "Olga", "Tenant")
	e.problem(req{method: "POST", path: "/api/v1/admin/queues/session", token: owner.AccessToken}, 403, "platform_admin_required")
	b := e.newPlatformAdmin("bob@example.com")
	support, err := e.admin.Tokens.IssueToken(auth.Token{User: e.userIDOf("olga@example.com"), Org: uuid.MustParse(owner.OrganizationID),
		Role: "owner", Actor: b.UserID, TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	w = e.problem(req{method: "POST", path: "/api/v1/admin/queues/session", token: support}, 403, "support_access_forbidden")
	if len(w.Result().Cookies()) != 0 {
		t.Errorf("a refused session set cookies: %v", w.Result().Cookies())
	}
}

// The UI answers with its page, a CSP that allows exactly its own inline
// scripts, the usual security headers, and its assets; its JSON API lists
// the project's queues; a state-changing call from another origin is
// refused even with a valid cookie.
func TestQueuesUIServesAsynqmon(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{queuesUI: true})
	cookie := e.queueSession(e.newPlatformAdmin("ada@example.com"))
	for _, path := range []string{"/admin/queues", "/admin/queues/", "/admin/queues/queues/default"} {
		w := doQueues(e.h, http.MethodGet, path, nil, cookie)
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
		if !strings.Contains(csp, "'unsafe-inline' https://fonts.googleapis.com") || strings.Contains(csp, "script-src 'self' 'unsafe-inline'") ||
			!strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("CSP: %s", csp)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Referrer-Policy") != "no-referrer" || w.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers %v", path, w.Header())
		}
	}
	page := doQueues(e.h, http.MethodGet, "/admin/queues", nil, cookie).Body.String()
	js := regexp.MustCompile(`src="(/admin/queues/static/js/[^"]+\.js)"`).FindAllStringSubmatch(page, -1)
	if len(js) == 0 {
		t.Fatal("no script assets on the page")
	}
	for _, m := range js {
		if w := doQueues(e.h, http.MethodGet, m[1], nil); w.Code != http.StatusUnauthorized {
			t.Errorf("%s without the cookie: %d", m[1], w.Code)
		}
		w := doQueues(e.h, http.MethodGet, m[1], nil, cookie)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/javascript") {
			t.Fatalf("%s: %d %s", m[1], w.Code, w.Header().Get("Content-Type"))
		}
	}

	w := doQueues(e.h, http.MethodGet, "/admin/queues/api/queues", nil, cookie)
	if w.Code != http.StatusOK {
		t.Fatalf("api/queues: %d %s", w.Code, w.Body)
	}
	var body struct {
		Queues []struct {
			Queue  string `json:"queue"`
			Paused bool   `json:"paused"`
		} `json:"queues"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, q := range body.Queues {
		names = append(names, q.Queue)
	}
	for _, q := range task.Queues {
		if !slices.Contains(names, q) {
			t.Fatalf("queue %s missing from %v", q, names)
		}
	}

	pause := "/admin/queues/api/queues/" + task.QueueLow + ":pause"
	w = doQueues(e.h, http.MethodPost, pause, map[string]string{"Origin": "https://evil.example"}, cookie)
	if w.Code != http.StatusForbidden || problemCode(w) != "cross_origin" || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("cross-origin action with the cookie: %d %s", w.Code, w.Body)
	}
	if paused(t, e, cookie, task.QueueLow) {
		t.Fatal("the cross-origin pause paused the queue")
	}
	queueRefused(t, "an action without the cookie", doQueues(e.h, http.MethodPost, pause, map[string]string{"Origin": "http://example.com"}))
	// The monitor itself (same origin) may act.
	if w := doQueues(e.h, http.MethodPost, pause, map[string]string{"Origin": "http://example.com"}, cookie); w.Code >= 300 || !paused(t, e, cookie, task.QueueLow) {
		t.Fatalf("same-origin pause: %d %s", w.Code, w.Body)
	}
}

func paused(t *testing.T, e *env, cookie *http.Cookie, queue string) bool {
	t.Helper()
	w := doQueues(e.h, http.MethodGet, "/admin/queues/api/queues", nil, cookie)
	var body struct {
		Queues []struct {
			Queue  string `json:"queue"`
			Paused bool   `json:"paused"`
		} `json:"queues"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("api/queues: %d %s", w.Code, w.Body)
	}
	for _, q := range body.Queues {
		if q.Queue == queue {
			return q.Paused
		}
	}
	t.Fatalf("no queue %s", queue)
	return false
}

// Whatever a payload holds, the queue UI does not show its secrets: keys
// that name one, links with a token and URL passwords are redacted, in
// every task listing and task page, while IDs and names stay readable.
// (The tasks are scheduled an hour ahead, so the test's own worker leaves
// them where the monitor shows them.)
func TestQueuesUIRedactsPayloadSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{queuesUI: true})
	cookie := e.queueSession(e.newPlatformAdmin("ada@example.com"))
	opt := asynq.RedisClientOpt{Addr: fmt.Sprintf("127.0.0.1:%d", e.redis.Port)}
	c := asynq.NewClient(opt)
	defer c.Close()
	payload := `{"to":"a@example.com","template":"reset_password","token_id":"0190aaaa-0000-7000-8000-000000000001",` +
		`"data":{"name":"Ada","link":"https://app.keel.test/reset-password?token=SECRET-LINK"},"password":"SECRET-PW",` +
		`"note":"see https://app.keel.test/accept-invitation?token=SECRET-QUERY&x=1 or smtp://u:SECRET-USERINFO@mail.test"}`
	enqueue := func() *asynq.TaskInfo {
		info, err := c.Enqueue(asynq.NewTask(task.TypeEmailAccount, []byte(payload)), asynq.Queue(task.QueueCritical), asynq.ProcessIn(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	scheduled, archived := enqueue(), enqueue()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	if err := insp.ArchiveTask(task.QueueCritical, archived.ID); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/admin/queues/api/queues/critical/scheduled_tasks",
		"/admin/queues/api/queues/critical/archived_tasks",
		"/admin/queues/api/queues/critical/tasks/" + scheduled.ID,
		"/admin/queues/api/queues/critical/tasks/" + archived.ID,
	} {
		w := doQueues(e.h, http.MethodGet, path, nil, cookie)
		body := w.Body.String()
		if w.Code != http.StatusOK || !strings.Contains(body, "0190aaaa-0000-7000-8000-000000000001") || !strings.Contains(body, "Ada") {
			t.Fatalf("%s: %d %s", path, w.Code, body)
		}
		if strings.Contains(body, "SECRET") {
			t.Errorf("%s shows a secret: %s", path, body)
		}
	}
}
