package httpapi_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/plan"
)

// plans returns a catalog whose default plan has the given limits (YAML
// values; "unlimited" allowed).
func tinyPlans(t testing.TB, seats, rate string) *plan.Catalog {
	t.Helper()
	c, err := plan.Parse([]byte(fmt.Sprintf(`default: tiny
fallback: tiny
plans:
  - id: tiny
    name: Tiny
    limits:
      seats: %s
      resources: 10
      storage_bytes: 1000
      api_requests_per_minute: %s
`, seats, rate)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type limitProblemDoc struct {
	Code   string `json:"code"`
	Metric string `json:"metric"`
	Limit  *int64 `json:"limit"`
	Usage  *int64 `json:"usage"`
	Plan   string `json:"plan"`
}

func limitProblem(t testing.TB, w *httptest.ResponseRecorder) limitProblemDoc {
	t.Helper()
	var p limitProblemDoc
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOrgRateLimit: an organization on a plan of 5 requests a minute gets
// 5 answers with RateLimit headers counting down, then 429 rate_limited
// with Retry-After; another organization's budget is its own. API keys
// spend the same organization budget. With Redis down requests pass.
func TestOrgRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true, plans: tinyPlans(t, "10", "5")})
	a := e.registerVerifiedLogin("rate-a@example.com")
	b := e.registerVerifiedLogin("rate-b@example.com")
	me := func(s session) req { return req{method: "GET", path: "/api/v1/me", token: s.AccessToken} }
	for i := range 5 {
		w := e.expect(me(a), http.StatusOK, nil)
		h := w.Header()
		if h.Get("RateLimit-Limit") != "5" || h.Get("RateLimit-Remaining") != strconv.Itoa(4-i) {
			t.Fatalf("request %d: limit %q remaining %q", i+1, h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"))
		}
		if reset, err := strconv.Atoi(h.Get("RateLimit-Reset")); err != nil || reset < 1 || reset > 60 {
			t.Fatalf("request %d: RateLimit-Reset %q", i+1, h.Get("RateLimit-Reset"))
		}
	}
	w := e.problem(me(a), http.StatusTooManyRequests, "rate_limited")
	if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 12 {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	if w.Header().Get("RateLimit-Remaining") != "0" || w.Header().Get("RateLimit-Limit") != "5" {
		t.Fatalf("429 headers: %v", w.Header())
	}
	// A refused POST does no work, idempotency key or not.
	e.problem(withIdempotencyKey(req{method: "POST", path: "/api/v1/organizations", token: a.AccessToken, body: map[string]string{"name": "Limited"}}, "x"),
		http.StatusTooManyRequests, "rate_limited")
	if e.countOrgs("Limited") != 0 {
		t.Fatal("a rate-limited request did its work")
	}
	// B is untouched by A's spending.
	if w := e.expect(me(b), http.StatusOK, nil); w.Header().Get("RateLimit-Remaining") != "4" {
		t.Fatalf("B's budget: %v", w.Header())
	}
	// Anonymous requests carry no organization and are not counted.
	if w := e.do(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "rate-a@example.com", "password": password}}); w.Code != 200 || w.Header().Get("RateLimit-Limit") != "" {
		t.Fatalf("login: %d %v", w.Code, w.Header())
	}
	// Redis down: fail open, without headers.
	e.redis.Stop()
	if w := e.expect(me(a), http.StatusOK, nil); w.Header().Get("RateLimit-Limit") != "" {
		t.Fatalf("headers without Redis: %v", w.Header())
	}
}

// TestOrgRateLimitAPIKeyAndUnlimited: an API key spends its organization's
// budget; an unlimited plan sets no headers and never refuses.
func TestOrgRateLimitAPIKeyAndUnlimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true, plans: tinyPlans(t, "10", "3")})
	a := e.registerVerifiedLogin("key-rate@example.com")
	var k struct {
		Key string `json:"key"`
	}
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/api-keys", token: a.AccessToken, body: map[string]string{"name": "ci", "role": "member"}}, 201, &k)
	e.expect(req{method: "GET", path: "/api/v1/organizations/current", token: k.Key}, http.StatusOK, nil)
	e.expect(req{method: "GET", path: "/api/v1/organizations/current", token: k.Key}, http.StatusOK, nil)
	e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: a.AccessToken}, http.StatusTooManyRequests, "rate_limited")

	u := newEnv(t, envOpts{noMail: true, plans: tinyPlans(t, "10", "unlimited")})
	s := u.registerVerifiedLogin("unlimited@example.com")
	for range 20 {
		if w := u.expect(req{method: "GET", path: "/api/v1/me", token: s.AccessToken}, http.StatusOK, nil); w.Header().Get("RateLimit-Limit") != "" {
			t.Fatalf("unlimited plan sent headers: %v", w.Header())
		}
	}
}

type usageDoc struct {
	Plan struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"plan"`
	Metrics []struct {
		Metric string `json:"metric"`
		Used   *int64 `json:"used"`
		Limit  *int64 `json:"limit"`
	} `json:"metrics"`
}

func (u usageDoc) of(t testing.TB, m string) (used, limit *int64) {
	t.Helper()
	for _, x := range u.Metrics {
		if x.Metric == m {
			return x.Used, x.Limit
		}
	}
	t.Fatalf("no metric %s in %+v", m, u)
	return nil, nil
}

func isInt(p *int64, v int64) bool { return p != nil && *p == v }

// TestUsage: any member reads the plan and each metric; seats count
// members and live pending invitations; the API rate is the budget this
// request spent; an uncapped metric's limit is null.
func TestUsage(t *testing.T) {
	t.Parallel()
	c, err := plan.Parse([]byte(`default: p
fallback: p
plans:
  - id: p
    name: Plan P
    limits: {seats: 5, resources: unlimited, storage_bytes: 1000, api_requests_per_minute: 100}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{plans: c})
	owner := e.signup("usage@example.com", "Owner", "Usage Org")
	member := e.join(owner, "usage-m@example.com", "member", 1)
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken,
		body: map[string]string{"email": "pending@example.com", "role": "member"}}, 201, nil)
	// An expired invitation holds no seat.
	if _, err := e.db.Owner.Exec(`INSERT INTO invitations (id, org_id, email, role, expires_at)
		VALUES (gen_random_uuid(), $1, 'gone@example.com', 'member', now() - interval '1 hour')`, owner.OrganizationID); err != nil {
		t.Fatal(err)
	}
	var u usageDoc
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/usage", token: member.AccessToken}, http.StatusOK, &u)
	if u.Plan.ID != "p" || u.Plan.Name != "Plan P" || len(u.Metrics) != 4 {
		t.Fatalf("usage: %+v", u)
	}
	if used, limit := u.of(t, "seats"); !isInt(used, 3) || !isInt(limit, 5) {
		t.Fatalf("seats %v/%v, want 3/5 (owner, member, one live invitation)", used, limit)
	}
	if used, limit := u.of(t, "resources"); !isInt(used, 0) || limit != nil {
		t.Fatalf("resources %v/%v, want 0/null", used, limit)
	}
	if used, limit := u.of(t, "storage_bytes"); !isInt(used, 0) || !isInt(limit, 1000) {
		t.Fatalf("storage %v/%v", used, limit)
	}
	used, limit := u.of(t, "api_requests_per_minute")
	if !isInt(limit, 100) || used == nil || *used < 1 {
		t.Fatalf("api rate %v/%v", used, limit)
	}
	// The budget refills one request every 0.6 s (100 a minute), at
	// whole-request steps whose phase the test cannot know: between two
	// reads a step can land however close together they are, so one pair
	// proves nothing (it failed so on a loaded machine). Six reads in d
	// seconds spent 5 requests after the first and got back at most
	// ceil(d/0.6) of them, so the count must rise by at least the
	// difference; a run too slow for that to be positive is tried again.
	counted := false
	for try := 0; try < 5 && !counted; try++ {
		var first, last usageDoc
		start := time.Now()
		e.expect(req{method: "GET", path: "/api/v1/organizations/current/usage", token: member.AccessToken}, http.StatusOK, &first)
		for range 5 {
			e.expect(req{method: "GET", path: "/api/v1/organizations/current/usage", token: member.AccessToken}, http.StatusOK, &last)
		}
		refilled := int64(math.Ceil(time.Since(start).Seconds() / 0.6))
		if refilled >= 5 {
			continue
		}
		ua, _ := first.of(t, "api_requests_per_minute")
		ub, _ := last.of(t, "api_requests_per_minute")
		if ua == nil || ub == nil {
			t.Fatal("api rate: no usage reported")
		}
		if *ub-*ua < 5-refilled {
			t.Fatalf("api rate did not count the requests: %d after %d, 5 spent and at most %d refilled", *ub, *ua, refilled)
		}
		counted = true
	}
	if !counted {
		t.Fatal("no six requests within 2.4 s in 5 tries: the count could not be checked")
	}
	e.problem(req{method: "GET", path: "/api/v1/organizations/current/usage"}, http.StatusUnauthorized, "unauthenticated")
}

func (e *env) inviteMember(s session, email string) *httptest.ResponseRecorder {
	return e.do(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: s.AccessToken,
		body: map[string]string{"email": email, "role": "member"}})
}

// TestSeatsAtInvitation: seats are members plus live pending invitations.
// With 3 seats the owner invites two; the third is 402 plan_limit_reached
// with the metric, limit, usage and plan. Re-inviting a pending address
// takes no new seat; revoking one frees it.
func TestSeatsAtInvitation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true, plans: tinyPlans(t, "3", "unlimited")})
	owner := e.registerVerifiedLogin("seats@example.com")
	for _, addr := range []string{"s1@example.com", "s2@example.com"} {
		if w := e.inviteMember(owner, addr); w.Code != 201 {
			t.Fatalf("invite %s: %d %s", addr, w.Code, w.Body.String())
		}
	}
	w := e.problem(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken,
		body: map[string]string{"email": "s3@example.com", "role": "member"}}, http.StatusPaymentRequired, "plan_limit_reached")
	if p := limitProblem(t, w); p.Metric != "seats" || !isInt(p.Limit, 3) || !isInt(p.Usage, 3) || p.Plan != "tiny" {
		t.Fatalf("problem: %+v", p)
	}
	// Replacing s1's live invitation holds its seat.
	var inv struct {
		ID string `json:"id"`
	}
	if w := e.inviteMember(owner, "s1@example.com"); w.Code != 201 {
		t.Fatalf("re-invite: %d %s", w.Code, w.Body.String())
	} else {
		_ = json.Unmarshal(w.Body.Bytes(), &inv)
	}
	// An expired invitation holds none: replacing it takes one (refused now),
	// and resending it would bring it back (refused too).
	if _, err := e.db.Owner.Exec(`UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE email = 's2@example.com'`); err != nil {
		t.Fatal(err)
	}
	var s2 string
	if err := e.db.Owner.Get(&s2, `SELECT id FROM invitations WHERE email = 's2@example.com'`); err != nil {
		t.Fatal(err)
	}
	if w := e.inviteMember(owner, "s3@example.com"); w.Code != 201 {
		t.Fatalf("the expired invitation's seat is free: %d %s", w.Code, w.Body.String())
	}
	e.problem(req{method: "POST", path: "/api/v1/organizations/current/invitations/" + s2 + "/resend", token: owner.AccessToken},
		http.StatusPaymentRequired, "plan_limit_reached")
	e.problem(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken,
		body: map[string]string{"email": "s2@example.com", "role": "member"}}, http.StatusPaymentRequired, "plan_limit_reached")
	// Revoking frees a seat.
	e.expect(req{method: "DELETE", path: "/api/v1/organizations/current/invitations/" + inv.ID, token: owner.AccessToken}, http.StatusNoContent, nil)
	if w := e.inviteMember(owner, "s4@example.com"); w.Code != 201 {
		t.Fatalf("after a revoke: %d %s", w.Code, w.Body.String())
	}
}

// TestSeatsConcurrentInvitations: with one seat left, 10 invitations sent at
// once for different addresses: exactly one wins.
func TestSeatsConcurrentInvitations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true, plans: tinyPlans(t, "3", "unlimited")})
	owner := e.registerVerifiedLogin("race@example.com")
	if w := e.inviteMember(owner, "first@example.com"); w.Code != 201 {
		t.Fatal(w.Body.String())
	}
	const n = 10
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			w := e.inviteMember(owner, fmt.Sprintf("racer%d@example.com", i))
			codes[i] = w.Code
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for i, c := range codes {
		switch c {
		case 201:
			won++
		case 402:
		default:
			t.Fatalf("invitation %d: %d", i, c)
		}
	}
	var pending int
	if err := e.db.Owner.Get(&pending, `SELECT count(*) FROM invitations WHERE accepted_at IS NULL`); err != nil {
		t.Fatal(err)
	}
	if won != 1 || pending != 2 {
		t.Fatalf("%d invitations won, %d pending; want 1 and 2", won, pending)
	}
}

// TestSeatsAtAcceptance: accepting turns an invitation's seat into a
// member's, so it passes while the members fit; when an organization holds
// more invitations than seats (made before a smaller plan), the acceptance
// that would pass the seats is 402 and joins no one.
func TestSeatsAtAcceptance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{plans: tinyPlans(t, "3", "unlimited")})
	owner := e.signup("accept@example.com", "Owner", "Accept Org")
	e.join(owner, "a1@example.com", "member", 1) // invited and accepted: 2 members
	if w := e.inviteMember(owner, "a2@example.com"); w.Code != 201 {
		t.Fatal(w.Body.String())
	}
	// One invitation too many, as a smaller plan would leave it.
	token, hash := auth.NewOpaqueToken()
	if _, err := e.db.Owner.Exec(`INSERT INTO invitations (id, org_id, email, role, token_hash, expires_at)
		VALUES (gen_random_uuid(), $1, 'a3@example.com', 'member', $2, now() + interval '1 day')`, owner.OrganizationID, hash); err != nil {
		t.Fatal(err)
	}
	tok2 := e.mailToken("a2@example.com", "invited you", 1)
	e.expect(req{method: "POST", path: "/api/v1/invitations/accept", body: map[string]string{"token": tok2, "name": "A2", "password": password}}, 200, nil)
	w := e.problem(req{method: "POST", path: "/api/v1/invitations/accept", body: map[string]string{"token": token, "name": "A3", "password": password}},
		http.StatusPaymentRequired, "plan_limit_reached")
	if p := limitProblem(t, w); p.Metric != "seats" || !isInt(p.Usage, 3) {
		t.Fatalf("problem: %+v", p)
	}
	var members, users int
	if err := e.db.Owner.Get(&members, `SELECT count(*) FROM memberships WHERE org_id = $1`, owner.OrganizationID); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Owner.Get(&users, `SELECT count(*) FROM users WHERE email = 'a3@example.com'`); err != nil {
		t.Fatal(err)
	}
	if members != 3 || users != 0 {
		t.Fatalf("%d members, %d a3 accounts; want 3 and 0", members, users)
	}
}
