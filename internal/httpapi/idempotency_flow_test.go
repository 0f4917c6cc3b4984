package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/httpapi/apitest"
	"github.com/keelhq/keel/internal/idempotency"
)

// withKey returns r carrying Idempotency-Key: key.
func withIdempotencyKey(r req, key string) req {
	h := map[string]string{"Idempotency-Key": key}
	for k, v := range r.header {
		h[k] = v
	}
	r.header = h
	return r
}

func (e *env) countOrgs(name string) int {
	e.t.Helper()
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM organizations WHERE name = $1`, name); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestIdempotentConcurrentCreates: 20 identical POSTs sent at once with one
// key create one organization, and every 2xx answer is byte for byte the
// same, status and Location included; all but one are replays.
func TestIdempotentConcurrentCreates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("idem@example.com", "Idem", "Idem Org")
	r := withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations", token: owner.AccessToken, body: map[string]string{"name": "Twenty"}}, "create-twenty")
	e.sendTwins(r, 20, http.StatusCreated)
	if got := e.countOrgs("Twenty"); got != 1 {
		t.Fatalf("%d organizations made, want 1", got)
	}
}

// TestIdempotentConcurrentResourceCreates is the acceptance test:
// the same POST /resources sent 20 times at once with one key makes one
// resource, and every 2xx answer is identical, Location and ETag included.
func TestIdempotentConcurrentResourceCreates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("idem-res@example.com", "Idem", "Idem Res Org")
	r := withIdempotencyKey(req{method: "POST", path: "/api/v1/resources", token: owner.AccessToken,
		body: map[string]any{"name": "Once", "attributes": map[string]int{"n": 1}}}, "create-once")
	w := e.sendTwins(r, 20, http.StatusCreated)
	if w.Header().Get("Location") == "" || w.Header().Get("ETag") == "" {
		t.Fatalf("the first answer lacks Location or ETag: %v", w.Header())
	}
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM resources WHERE name = 'Once'`); err != nil {
		t.Fatal(err)
	}
	var used int64
	if err := e.db.Owner.Get(&used, `SELECT GREATEST(coalesce((SELECT sum(value) FROM usage_counters WHERE metric = 'resources'), 0) + coalesce((SELECT sum(delta) FROM usage_deltas WHERE metric = 'resources'), 0), 0)::bigint`); err != nil {
		t.Fatal(err)
	}
	if n != 1 || used != 1 {
		t.Fatalf("%d resources made and %d counted, want 1 and 1", n, used)
	}
}

// sendTwins sends r n times at once and checks that every answer has the
// status want and the same body and headers (Content-Type, Location, ETag),
// that exactly one did the work (the others are replays), and that a late
// retry replays it too. It returns the first answer.
func (e *env) sendTwins(r req, n, want int) *httptest.ResponseRecorder {
	e.t.Helper()
	ws := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ws[i] = e.do(r)
		}()
	}
	close(start)
	wg.Wait()
	first, fresh := ws[0], 0
	for i, w := range ws {
		if w.Code != want {
			e.t.Fatalf("request %d: %d %s", i, w.Code, w.Body.String())
		}
		if !bytes.Equal(first.Body.Bytes(), w.Body.Bytes()) {
			e.t.Fatalf("request %d answered another body:\n%s\n%s", i, first.Body.Bytes(), w.Body.Bytes())
		}
		for _, h := range []string{"Content-Type", "Location", "ETag"} {
			if got := w.Header().Get(h); got != first.Header().Get(h) {
				e.t.Fatalf("request %d: %s %q, first had %q", i, h, got, first.Header().Get(h))
			}
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			e.t.Fatalf("request %d: content type %q", i, ct)
		}
		if w.Header().Get("Idempotent-Replayed") != "true" {
			fresh++
		}
	}
	if fresh != 1 {
		e.t.Fatalf("%d requests did the work, want 1", fresh)
	}
	// Later, the same request still replays.
	w := e.expect(r, want, nil)
	if !bytes.Equal(w.Body.Bytes(), first.Body.Bytes()) || w.Header().Get("Idempotent-Replayed") != "true" {
		e.t.Fatalf("late retry: %s %v", w.Body.String(), w.Header())
	}
	return first
}

// TestIdempotencyKeyReused: a key names one request. Another body, path or
// query with it is 422; a malformed key is 400; no key is no idempotency.
func TestIdempotencyKeyReused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("reuse@example.com", "Reuse", "Reuse Org")
	create := func(name string) req {
		return req{method: "POST", path: "/api/v1/organizations", token: owner.AccessToken, body: map[string]string{"name": name}}
	}
	e.expect(withIdempotencyKey(create("One"), "k1"), http.StatusCreated, nil)
	e.problem(withIdempotencyKey(create("Two"), "k1"), http.StatusUnprocessableEntity, "idempotency_key_reused")
	// The same body with whitespace changed is another request: bodies are compared byte for byte.
	e.problem(withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations", token: owner.AccessToken, body: `{"name": "One"}`}, "k1"),
		http.StatusUnprocessableEntity, "idempotency_key_reused")
	e.problem(withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations?x=1", token: owner.AccessToken, body: map[string]string{"name": "One"}}, "k1"),
		http.StatusUnprocessableEntity, "idempotency_key_reused")
	e.problem(withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken,
		body: map[string]string{"name": "One"}}, "k1"), http.StatusUnprocessableEntity, "idempotency_key_reused")
	if got := e.countOrgs("Two"); got != 0 {
		t.Fatalf("a refused key reuse created %d organizations", got)
	}
	// The query's pairs are compared in a canonical order.
	e.expect(withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations?b=2&a=1", token: owner.AccessToken, body: map[string]string{"name": "Q"}}, "kq"), http.StatusCreated, nil)
	w := e.expect(withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations?a=1&b=2", token: owner.AccessToken, body: map[string]string{"name": "Q"}}, "kq"), http.StatusCreated, nil)
	if w.Header().Get("Idempotent-Replayed") != "true" || e.countOrgs("Q") != 1 {
		t.Fatalf("reordered query: replayed=%q, %d organizations", w.Header().Get("Idempotent-Replayed"), e.countOrgs("Q"))
	}
	for _, bad := range []string{strings.Repeat("k", 256), "naïve", "tab\there"} {
		e.problem(withIdempotencyKey(create("Bad"), bad), http.StatusBadRequest, "idempotency_key_invalid")
	}
	e.expect(withIdempotencyKey(create("Long"), strings.Repeat("k", 255)), http.StatusCreated, nil)
	// An empty header, and two of them, are malformed too.
	for _, vals := range [][]string{{""}, {"a", "b"}} {
		hr := httptest.NewRequest("POST", "/api/v1/organizations", strings.NewReader(`{"name":"Bad"}`))
		hr.Header.Set("Content-Type", "application/json")
		hr.Header.Set("Authorization", "Bearer "+owner.AccessToken)
		for _, v := range vals {
			hr.Header.Add("Idempotency-Key", v)
		}
		if w := apitest.Do(t, e.h, hr); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "idempotency_key_invalid") {
			t.Fatalf("Idempotency-Key %q: %d %s", vals, w.Code, w.Body.String())
		}
	}
	if got := e.countOrgs("Bad"); got != 0 {
		t.Fatalf("malformed keys created %d organizations", got)
	}
	// Without a key every POST does the work.
	e.expect(create("Plain"), http.StatusCreated, nil)
	e.expect(create("Plain"), http.StatusCreated, nil)
	if got := e.countOrgs("Plain"); got != 2 {
		t.Fatalf("%d organizations without a key, want 2", got)
	}
}

// TestIdempotencyScopedToCredential: keys of different users, or of one
// user in different organizations, never meet, even with the same string.
func TestIdempotencyScopedToCredential(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("scope-a@example.com", "A", "Scope Org")
	other := e.join(owner, "scope-b@example.com", "admin", 1)
	create := func(s session, name string) req {
		return withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations", token: s.AccessToken, body: map[string]string{"name": name}}, "shared")
	}
	wa := e.expect(create(owner, "By A"), http.StatusCreated, nil)
	wb := e.expect(create(other, "By B"), http.StatusCreated, nil)
	if wa.Header().Get("Idempotent-Replayed") != "" || wb.Header().Get("Idempotent-Replayed") != "" {
		t.Fatal("a key of one user replayed for another")
	}
	// The very same request from B is not A's either.
	same := func(s session) req {
		return withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations", token: s.AccessToken, body: map[string]string{"name": "Same"}}, "same")
	}
	wa2 := e.expect(same(owner), http.StatusCreated, nil)
	wb2 := e.expect(same(other), http.StatusCreated, nil)
	if wb2.Header().Get("Idempotent-Replayed") != "" || bytes.Equal(wa2.Body.Bytes(), wb2.Body.Bytes()) || e.countOrgs("Same") != 2 {
		t.Fatalf("B got A's answer: %s / %s, %d organizations", wa2.Body.String(), wb2.Body.String(), e.countOrgs("Same"))
	}
	// A in another organization (after switch-org) is another scope.
	var org struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(wa.Body.Bytes(), &org); err != nil {
		t.Fatal(err)
	}
	var switched session
	e.expect(req{method: "POST", path: "/api/v1/auth/switch-org", token: owner.AccessToken, body: map[string]string{"organization_id": org.ID}}, http.StatusOK, &switched)
	e.expect(create(switched, "By A elsewhere"), http.StatusCreated, nil)
	// And in the first organization A's key still replays.
	if w := e.expect(create(owner, "By A"), http.StatusCreated, nil); w.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatal("A's key stopped replaying")
	}
}

// TestIdempotencyFailuresNotStored: a 5xx (the work failed) or a 4xx (it
// was refused) frees the key, so a retry with it runs again.
func TestIdempotencyFailuresNotStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	owner := e.registerVerifiedLogin("fail@example.com")
	r := withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations", token: owner.AccessToken, body: map[string]string{"name": "Flaky"}}, "flaky")
	if _, err := e.db.Owner.Exec(`CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$;
		CREATE TRIGGER test_fail BEFORE INSERT ON organizations FOR EACH ROW EXECUTE FUNCTION test_fail()`); err != nil {
		t.Fatal(err)
	}
	e.noCheck = true // the document lists no 500s
	e.problem(r, http.StatusInternalServerError, "internal_error")
	e.problem(r, http.StatusInternalServerError, "internal_error") // not a replay: it ran again and failed again
	e.noCheck = false
	if _, err := e.db.Owner.Exec(`DROP TRIGGER test_fail ON organizations`); err != nil {
		t.Fatal(err)
	}
	w := e.expect(r, http.StatusCreated, nil)
	if w.Header().Get("Idempotent-Replayed") != "" || e.countOrgs("Flaky") != 1 {
		t.Fatalf("retry after 5xx: replayed=%q, %d organizations", w.Header().Get("Idempotent-Replayed"), e.countOrgs("Flaky"))
	}
	// A 4xx is not kept either: a fixed request may reuse the key.
	inv := func(body any) req {
		return withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken, body: body}, "inv")
	}
	e.problem(inv(map[string]string{"email": "x@example.com", "role": "boss"}), http.StatusBadRequest, "validation_failed")
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM idempotency_keys WHERE key = 'inv'`); err != nil || n != 0 {
		t.Fatalf("a 400 left %d keys (%v)", n, err)
	}
	e.expect(inv(map[string]string{"email": "x@example.com", "role": "member"}), http.StatusCreated, nil)
}

// TestIdempotencyExpiry: a key lives 24 hours on the API's clock; after
// that the same key may name another request.
func TestIdempotencyExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	owner := e.registerVerifiedLogin("expiry@example.com")
	create := func(name string) req {
		return withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations", token: owner.AccessToken, body: map[string]string{"name": name}}, "day")
	}
	e.expect(create("Day one"), http.StatusCreated, nil)
	e.clock.Advance(24*time.Hour - time.Second)
	if w := e.expect(create("Day one"), http.StatusCreated, nil); w.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatal("no replay within 24 hours")
	}
	e.problem(create("Day two"), http.StatusUnprocessableEntity, "idempotency_key_reused")
	e.clock.Advance(time.Second)
	if w := e.expect(create("Day two"), http.StatusCreated, nil); w.Header().Get("Idempotent-Replayed") != "" {
		t.Fatal("an expired key replayed")
	}
	if e.countOrgs("Day one") != 1 || e.countOrgs("Day two") != 1 {
		t.Fatalf("organizations: %d Day one, %d Day two", e.countOrgs("Day one"), e.countOrgs("Day two"))
	}
}

// TestIdempotencyInFlight: while a request holds its key, a twin answers
// 409 request_in_progress (here without waiting); a key whose request was
// cut off (it never answered) frees itself after the lock's minute, for
// the same request only.
func TestIdempotencyInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	e.keys.Wait = -1
	owner := e.registerVerifiedLogin("inflight@example.com")
	body := `{"name":"Crashed"}`
	r := withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations", token: owner.AccessToken, body: body}, "crash")
	// A request that claimed the key and died: the lock is there, no answer ever comes.
	scope := idempotency.Scope{OrgID: uuid.MustParse(owner.OrganizationID), Credential: e.userIDOf("inflight@example.com"), Key: "crash"}
	lock, replay, err := e.keys.Begin(context.Background(), scope, idempotency.Fingerprint("POST", "/api/v1/organizations", "", []byte(body)))
	if err != nil || lock == nil || replay != nil {
		t.Fatalf("claim: %v %v %v", lock, replay, err)
	}
	w := e.problem(r, http.StatusConflict, "request_in_progress")
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	e.clock.Advance(idempotency.DefaultLockTTL)
	// Another request may not take over a key whose request may have done its work.
	e.problem(withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations", token: owner.AccessToken, body: `{"name":"Other"}`}, "crash"),
		http.StatusUnprocessableEntity, "idempotency_key_reused")
	if w := e.expect(r, http.StatusCreated, nil); w.Header().Get("Idempotent-Replayed") != "" {
		t.Fatal("the retry after the lock expired was a replay")
	}
	// The dead request's late answer changes nothing: its lock is gone.
	if err := lock.Complete(context.Background(), idempotency.Response{Status: 201, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if w := e.expect(r, http.StatusCreated, nil); w.Header().Get("Idempotent-Replayed") != "true" || w.Body.String() == "{}" {
		t.Fatalf("replay after a stale completion: %s", w.Body.String())
	}
	if e.countOrgs("Crashed") != 1 {
		t.Fatalf("%d organizations", e.countOrgs("Crashed"))
	}
}

// TestIdempotencyWaitsForTwin: a twin that arrives while the first request
// runs waits for its answer and replays it.
func TestIdempotencyWaitsForTwin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	owner := e.registerVerifiedLogin("twin@example.com")
	body := `{"name":"Twin"}`
	scope := idempotency.Scope{OrgID: uuid.MustParse(owner.OrganizationID), Credential: e.userIDOf("twin@example.com"), Key: "twin"}
	lock, _, err := e.keys.Begin(context.Background(), scope, idempotency.Fingerprint("POST", "/api/v1/organizations", "", []byte(body)))
	if err != nil || lock == nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{}, 100)
	e.keys.Waiting = func(idempotency.Scope) { waiting <- struct{}{} }
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		done <- e.do(withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations", token: owner.AccessToken, body: body}, "twin"))
	}()
	// The twin found the key held and waits; only then does the first request answer.
	<-waiting
	<-waiting
	stored := `{"id":"00000000-0000-0000-0000-000000000001","name":"Twin","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`
	if err := lock.Complete(context.Background(), idempotency.Response{Status: 201, Body: []byte(stored),
		Header: map[string]string{"Content-Type": "application/json; charset=utf-8", "Location": "/x"}}); err != nil {
		t.Fatal(err)
	}
	w := <-done
	if w.Code != 201 || w.Body.String() != stored || w.Header().Get("Location") != "/x" || w.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("twin: %d %v %s", w.Code, w.Header(), w.Body.String())
	}
	if e.countOrgs("Twin") != 0 {
		t.Fatal("the twin did the work")
	}
}

// TestIdempotencySecretsNeverStored: responses holding a secret (an API
// key, a TOTP secret, a session) keep no body or header at rest; a retry
// with the key answers 409 idempotency_replay_unavailable without doing the
// work again. Anonymous POSTs (login) store nothing at all.
func TestIdempotencySecretsNeverStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	owner := e.registerVerifiedLogin("secret@example.com")
	keyReq := withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations/current/api-keys", token: owner.AccessToken,
		body: map[string]string{"name": "ci", "role": "member"}}, "mint")
	var k struct {
		Key string `json:"key"`
	}
	e.expect(keyReq, http.StatusCreated, &k)
	e.problem(keyReq, http.StatusConflict, "idempotency_replay_unavailable")
	var keys int
	if err := e.db.Owner.Get(&keys, `SELECT count(*) FROM api_keys`); err != nil || keys != 1 {
		t.Fatalf("%d API keys (%v), want 1", keys, err)
	}
	var setup struct {
		Secret string `json:"secret"`
	}
	e.expect(withIdempotencyKey(req{method: "POST", path: "/api/v1/auth/2fa/setup", token: owner.AccessToken}, "totp"), http.StatusOK, &setup)
	var sw session
	e.expect(withIdempotencyKey(req{method: "POST", path: "/api/v1/auth/switch-org", token: owner.AccessToken,
		body: map[string]string{"organization_id": owner.OrganizationID}}, "switch"), http.StatusOK, &sw)
	// Anonymous: a login with a key stores nothing.
	login := e.do(withIdempotencyKey(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "secret@example.com", "password": password}}, "login"))
	if login.Code != 200 {
		t.Fatalf("login: %d", login.Code)
	}
	var s session
	_ = json.Unmarshal(login.Body.Bytes(), &s)
	var rows []struct {
		Key          string `db:"key"`
		Unreplayable bool   `db:"unreplayable"`
		Dump         string `db:"dump"`
	}
	if err := e.db.Owner.Select(&rows, `SELECT key, unreplayable, coalesce(encode(body, 'escape'), '') || coalesce(header::text, '') AS dump FROM idempotency_keys ORDER BY key`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("want the keys mint, switch and totp stored, got %+v", rows)
	}
	for _, r := range rows {
		if !r.Unreplayable || r.Dump != "" {
			t.Fatalf("key %s stored a secret-bearing response: %+v", r.Key, r)
		}
	}
	var dump string
	if err := e.db.Owner.Get(&dump, `SELECT coalesce(string_agg(t::text, ' '), '') FROM idempotency_keys t`); err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{"api key": k.Key, "totp": setup.Secret, "access": sw.AccessToken,
		"refresh": sw.RefreshToken, "login access": s.AccessToken, "login refresh": s.RefreshToken} {
		if secret == "" || strings.Contains(dump, secret) {
			t.Fatalf("%s secret %q missing or stored", name, secret)
		}
	}
}

// registerLogin registers email (its organization is named after it),
// marks it verified without mail, and logs in.
func (e *env) registerVerifiedLogin(email string) session {
	e.t.Helper()
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{"email": email, "password": password, "name": "Tester"}}, 202, nil)
	if _, err := e.db.Owner.Exec(`UPDATE users SET email_verified_at = now() WHERE email = $1`, email); err != nil {
		e.t.Fatal(err)
	}
	return e.login(email, password)
}

func (e *env) userIDOf(email string) uuid.UUID {
	e.t.Helper()
	var id uuid.UUID
	if err := e.db.Owner.Get(&id, `SELECT id FROM users WHERE email = $1`, email); err != nil {
		e.t.Fatal(err)
	}
	return id
}
