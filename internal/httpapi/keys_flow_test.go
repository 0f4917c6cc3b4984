package httpapi_test

import (
	"testing"
	"time"
)

// apiKey creates a key as tok and returns it.
func (e *env) apiKey(tok, name, role string) (id, key string) {
	e.t.Helper()
	var k struct{ ID, Key string }
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/api-keys", token: tok,
		body: map[string]string{"name": name, "role": role}}, 201, &k)
	return k.ID, k.Key
}

// TestRemovedAdminsKeyStopsWorking: an admin makes an admin key, is then
// removed from the organization; the key must not keep their access.
func TestRemovedAdminsKeyStopsWorking(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("olga@example.com", "Olga", "Evictions")
	mallory := e.join(owner, "mallory@example.com", "admin", 1)
	keyID, key := e.apiKey(mallory.AccessToken, "backdoor", "admin")
	var createdBy string
	if err := e.db.Owner.Get(&createdBy, `SELECT created_by::text FROM api_keys WHERE id = $1`, keyID); err != nil ||
		createdBy != e.members(owner.AccessToken)["mallory@example.com"].UserID {
		t.Fatalf("key's creator %q (%v), want mallory", createdBy, err)
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/members", token: key}, 200, nil)

	malloryID := e.members(owner.AccessToken)["mallory@example.com"].UserID
	e.expect(req{method: "DELETE", path: "/api/v1/organizations/current/members/" + malloryID, token: owner.AccessToken}, 204, nil)
	for _, r := range []req{
		{method: "GET", path: "/api/v1/organizations/current/members"},
		{method: "GET", path: "/api/v1/organizations/current"},
		{method: "PATCH", path: "/api/v1/organizations/current", body: map[string]string{"name": "Pwned"}},
	} {
		r.token = key
		e.problem(r, 401, "invalid_api_key")
	}
	// Deleting the creator's account (created_by becomes NULL) keeps it dead.
	if _, err := e.db.Owner.Exec(`UPDATE api_keys SET created_by = NULL WHERE id = $1`, keyID); err != nil {
		t.Fatal(err)
	}
	e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: key}, 401, "invalid_api_key")
}

// TestDemotedCreatorsKey: a key acts only while its creator holds at least
// the key's role, so demoting an admin disarms their admin keys at once.
func TestDemotedCreatorsKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("dora@example.com", "Dora", "Demotions")
	admin := e.join(owner, "adam@example.com", "admin", 1)
	_, adminKey := e.apiKey(admin.AccessToken, "ci", "admin")
	_, memberKey := e.apiKey(admin.AccessToken, "reader", "member")
	_, ownersKey := e.apiKey(owner.AccessToken, "owner's", "admin")
	adamID := e.members(owner.AccessToken)["adam@example.com"].UserID
	role := func(r string) {
		t.Helper()
		e.expect(req{method: "PATCH", path: "/api/v1/organizations/current/members/" + adamID, token: owner.AccessToken,
			body: map[string]string{"role": r}}, 200, nil)
	}
	current := func(key string) req {
		return req{method: "GET", path: "/api/v1/organizations/current", token: key}
	}

	role("member")
	e.problem(current(adminKey), 401, "invalid_api_key")
	e.expect(current(memberKey), 200, nil) // a member may still hold a member key
	e.expect(current(ownersKey), 200, nil) // other creators' keys are untouched

	// The key follows its creator's role: restored with it (revoke a key
	// to end it for good).
	role("admin")
	e.expect(current(adminKey), 200, nil)
}

// TestAPIKeysCannotManageKeysMembersOrInvitations: a leaked admin key must
// not mint more keys, invite (or promote) accomplices, or lock out the
// people who could revoke it. Those are session-only operations.
func TestAPIKeysCannotManageKeysMembersOrInvitations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("kora@example.com", "Kora", "Key limits")
	e.join(owner, "mia@example.com", "member", 1)
	miaID := e.members(owner.AccessToken)["mia@example.com"].UserID
	ownerID := e.members(owner.AccessToken)["kora@example.com"].UserID
	otherKeyID, _ := e.apiKey(owner.AccessToken, "other", "member")
	var inv struct{ ID string }
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken,
		body: map[string]string{"email": "pending@example.com", "role": "member"}}, 201, &inv)
	_, key := e.apiKey(owner.AccessToken, "leaked", "admin")
	snapshot := func() string {
		var s string
		err := e.db.Owner.Get(&s, `SELECT concat_ws('|',
			(SELECT string_agg(user_id || role, ',' ORDER BY user_id) FROM memberships),
			(SELECT string_agg(id || email || role || encode(token_hash, 'hex') || expires_at, ',' ORDER BY id) FROM invitations),
			(SELECT string_agg(id || coalesce(revoked_at::text, 'live'), ',' ORDER BY id) FROM api_keys))`)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := snapshot()

	base := "/api/v1/organizations/current"
	for _, r := range []req{
		{method: "POST", path: base + "/api-keys", body: map[string]string{"name": "more", "role": "admin"}},
		{method: "DELETE", path: base + "/api-keys/" + otherKeyID},
		{method: "POST", path: base + "/invitations", body: map[string]string{"email": "accomplice@example.com", "role": "admin"}},
		{method: "DELETE", path: base + "/invitations/" + inv.ID},
		{method: "POST", path: base + "/invitations/" + inv.ID + "/resend"},
		{method: "PATCH", path: base + "/members/" + miaID, body: map[string]string{"role": "admin"}},
		{method: "DELETE", path: base + "/members/" + miaID},
		{method: "DELETE", path: base + "/members/" + ownerID},
	} {
		r.token = key
		e.problem(r, 403, "user_required")
	}
	if after := snapshot(); after != before {
		t.Fatalf("an API key changed keys, invitations or members:\nbefore %s\nafter  %s", before, after)
	}
	// Reading stays open to admin keys.
	for _, p := range []string{"/members", "/api-keys", "/invitations", "/audit-log"} {
		e.expect(req{method: "GET", path: base + p, token: key}, 200, nil)
	}
}

// TestAPIKeyExpiry: a key made with expires_at works until then and is
// refused after; a time in the past is refused at creation.
func TestAPIKeyExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("eve@example.com", "Eve", "Expiry")
	create := func(expires string) req {
		return req{method: "POST", path: "/api/v1/organizations/current/api-keys", token: owner.AccessToken,
			body: map[string]string{"name": "temp", "role": "member", "expires_at": expires}}
	}
	e.problem(create(e.clock.Now().Add(-time.Minute).UTC().Format(time.RFC3339)), 400, "validation_failed")
	e.problem(create("tomorrow"), 400, "validation_failed")

	at := e.clock.Now().Add(time.Hour).UTC().Truncate(time.Second)
	var k struct {
		ID, Key   string
		ExpiresAt string `json:"expires_at"`
	}
	e.expect(create(at.Format(time.RFC3339)), 201, &k)
	if got, err := time.Parse(time.RFC3339, k.ExpiresAt); err != nil || !got.Equal(at) {
		t.Fatalf("expires_at %q, want %s", k.ExpiresAt, at)
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current", token: k.Key}, 200, nil)
	var list struct {
		Data []struct {
			ExpiresAt string `json:"expires_at"`
		} `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/api-keys", token: owner.AccessToken}, 200, &list)
	if len(list.Data) != 1 || list.Data[0].ExpiresAt != k.ExpiresAt {
		t.Fatalf("listed %+v", list.Data)
	}
	e.clock.Advance(time.Hour + time.Second)
	e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: k.Key}, 401, "invalid_api_key")
}

// TestAdminCannotReplaceOwnersInvitation: an admin may not revoke an
// owner's pending invitation, so re-inviting that address (which would
// replace it) is refused the same way, and the owner's link keeps working.
func TestAdminCannotReplaceOwnersInvitation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{plans: tinyPlans(t, "unlimited", "unlimited")}) // more people than the free plan's 3 seats
	owner := e.signup("otto@example.com", "Otto", "Succession")
	admin := e.join(owner, "ada@example.com", "admin", 1)
	invite := func(tok, role string) req {
		return req{method: "POST", path: "/api/v1/organizations/current/invitations", token: tok,
			body: map[string]string{"email": "heir@example.com", "role": role}}
	}
	var inv struct{ ID string }
	e.expect(invite(owner.AccessToken, "owner"), 201, &inv)
	tok := e.mailToken("heir@example.com", "invited you", 1)

	e.problem(req{method: "DELETE", path: "/api/v1/organizations/current/invitations/" + inv.ID, token: admin.AccessToken}, 403, "forbidden")
	e.problem(invite(admin.AccessToken, "member"), 403, "forbidden")
	e.problem(invite(admin.AccessToken, "admin"), 403, "forbidden")

	var acc struct{ Role string }
	e.expect(req{method: "POST", path: "/api/v1/invitations/accept", body: map[string]string{
		"token": tok, "name": "Heir", "password": password}}, 200, &acc)
	if acc.Role != "owner" {
		t.Fatalf("accepted as %q, want owner", acc.Role)
	}

	// An admin's own pending invitations, and members', stay replaceable.
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: admin.AccessToken,
		body: map[string]string{"email": "temp@example.com", "role": "member"}}, 201, nil)
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: admin.AccessToken,
		body: map[string]string{"email": "temp@example.com", "role": "admin"}}, 201, nil)
}

// BenchmarkAPIKeyRequest measures GET /organizations/current with an API
// key: the prefix lookup (which also reads the creator's membership and the
// expiry), the touch of last_used_at (at most once a minute) and the
// request's tenant transaction.
//
//	go test -run XXX -bench APIKeyRequest -benchtime 5s ./internal/httpapi
func BenchmarkAPIKeyRequest(b *testing.B) {
	e := newEnv(b, envOpts{noMail: true})
	e.noCheck = true
	registerVerified(b, e, "bench@example.com")
	_, key := e.apiKey(e.login("bench@example.com", password).AccessToken, "bench", "admin")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w := e.do(req{method: "GET", path: "/api/v1/organizations/current", token: key}); w.Code != 200 {
				b.Errorf("GET with key: %d %s", w.Code, w.Body.String())
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}
