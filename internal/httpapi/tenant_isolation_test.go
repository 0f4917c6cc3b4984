package httpapi_test

import (
	"testing"
)

// TestCrossTenantIDs: org A's admin calls every endpoint that takes an ID
// with org B's IDs; each answers 404 and B's rows are unchanged. A's API
// key is refused all of them before any lookup (they are session-only);
// on resources, which API keys may use, A's key gets 404 like A's users.
func TestCrossTenantIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a := e.signup("a-owner@example.com", "A", "Org A")
	b := e.signup("b-owner@example.com", "B", "Org B")
	e.join(a, "a-member@example.com", "member", 1)
	e.join(b, "b-member@example.com", "member", 1)
	var bInv, bKey struct{ ID string }
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: b.AccessToken,
		body: map[string]string{"email": "b-pending@example.com", "role": "member"}}, 201, &bInv)
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/api-keys", token: b.AccessToken,
		body: map[string]string{"name": "b", "role": "admin"}}, 201, &bKey)
	var aKey struct{ Key string }
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/api-keys", token: a.AccessToken,
		body: map[string]string{"name": "a", "role": "admin"}}, 201, &aKey)
	bMembers := e.members(b.AccessToken)
	bOwner, bMember := bMembers["b-owner@example.com"].UserID, bMembers["b-member@example.com"].UserID

	snapshot := func() string {
		var s string
		err := e.db.Owner.Get(&s, `SELECT concat_ws('|',
			(SELECT string_agg(user_id || role, ',' ORDER BY user_id) FROM memberships WHERE org_id = $1),
			(SELECT string_agg(id || email || expires_at, ',' ORDER BY id) FROM invitations WHERE org_id = $1),
			(SELECT string_agg(id || coalesce(revoked_at::text, 'live'), ',' ORDER BY id) FROM api_keys WHERE org_id = $1),
			(SELECT count(*) FROM audit_log WHERE org_id = $1))`, b.OrganizationID)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := snapshot()
	base := "/api/v1/organizations/current"
	for _, tok := range []string{a.AccessToken, aKey.Key} {
		for _, r := range []req{
			{method: "PATCH", path: base + "/members/" + bMember, body: map[string]string{"role": "admin"}},
			{method: "PATCH", path: base + "/members/" + bOwner, body: map[string]string{"role": "member"}},
			{method: "DELETE", path: base + "/members/" + bMember},
			{method: "DELETE", path: base + "/members/" + bOwner},
			{method: "DELETE", path: base + "/invitations/" + bInv.ID},
			{method: "POST", path: base + "/invitations/" + bInv.ID + "/resend"},
			{method: "DELETE", path: base + "/api-keys/" + bKey.ID},
		} {
			r.token = tok
			if tok == aKey.Key {
				e.problem(r, 403, "user_required")
				continue
			}
			e.problem(r, 404, "not_found")
		}
	}
	if after := snapshot(); after != before {
		t.Fatalf("org B changed:\nbefore %s\nafter  %s", before, after)
	}
	// Lists in A never show B's rows.
	if m := e.members(a.AccessToken); len(m) != 2 || m["b-member@example.com"].UserID != "" {
		t.Fatalf("A's members %+v", m)
	}
	var inv struct{ Data []any }
	e.expect(req{method: "GET", path: base + "/invitations", token: a.AccessToken}, 200, &inv)
	if len(inv.Data) != 0 {
		t.Fatalf("A sees invitations %+v", inv.Data)
	}
	// Switching into B is refused to A's users.
	e.problem(req{method: "POST", path: "/api/v1/auth/switch-org", token: a.AccessToken,
		body: map[string]string{"organization_id": b.OrganizationID}}, 403, "not_a_member")

	// Resources: A's owner and A's admin key get 404 for B's live and
	// deleted resources on every endpoint, and B's resources do not change.
	// (RLS alone: resourcedb's TestRLSAloneHidesOtherOrganizations.)
	bRes := e.createResource(b.AccessToken, map[string]any{"name": "B's"})
	bGone := e.createResource(b.AccessToken, map[string]any{"name": "B's deleted"})
	e.expect(req{method: "DELETE", path: "/api/v1/resources/" + bGone.ID, token: b.AccessToken}, 204, nil)
	resources := func() string {
		var s string
		err := e.db.Owner.Get(&s, `SELECT concat_ws('|',
			(SELECT string_agg(id || name || version || coalesce(deleted_at::text, 'live'), ',' ORDER BY id) FROM resources WHERE org_id = $1),
			(SELECT count(*) FROM audit_log WHERE org_id = $1))`, b.OrganizationID)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	beforeRes := resources()
	for _, tok := range []string{a.AccessToken, aKey.Key} {
		for _, id := range []string{bRes.ID, bGone.ID} {
			p := "/api/v1/resources/" + id
			for _, r := range []req{
				{method: "GET", path: p},
				{method: "PATCH", path: p, header: map[string]string{"If-Match": `"1"`}, body: map[string]string{"name": "taken"}},
				{method: "PATCH", path: p, body: map[string]any{"name": "taken", "version": 1}},
				{method: "DELETE", path: p},
				{method: "POST", path: p + "/restore"},
			} {
				r.token = tok
				e.problem(r, 404, "not_found")
			}
		}
		if names := e.resourceNames(tok, "", 100); len(names) != 0 {
			t.Fatalf("A lists B's resources: %q", names)
		}
	}
	if after := resources(); after != beforeRes {
		t.Fatalf("B's resources changed:\nbefore %s\nafter  %s", beforeRes, after)
	}
}
