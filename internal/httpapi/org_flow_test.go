package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

type member struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Role   string `json:"role"`
}

func (e *env) members(tok string) map[string]member {
	e.t.Helper()
	var out struct {
		Data []member `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/members", token: tok}, 200, &out)
	m := map[string]member{}
	for _, x := range out.Data {
		m[x.Email] = x
	}
	return m
}

func TestOrganizationsAndSwitch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup("olga@example.com", "Olga", "First")
	stranger := e.signup("sam@example.com", "Sam", "Elsewhere")
	var o struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	e.expect(req{method: "POST", path: "/api/v1/organizations", token: s.AccessToken, body: map[string]string{"name": "Second"}}, 201, &o)
	var list struct {
		Data []struct {
			OrganizationID string `json:"organization_id"`
			Role           string `json:"role"`
		} `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations", token: s.AccessToken}, 200, &list)
	if len(list.Data) != 2 || list.Data[1].OrganizationID != o.ID || list.Data[1].Role != "owner" {
		t.Fatalf("organizations %+v", list)
	}
	var sw session
	e.expect(req{method: "POST", path: "/api/v1/auth/switch-org", token: s.AccessToken, body: map[string]string{"organization_id": o.ID}}, 200, &sw)
	if claimsOf(t, sw.AccessToken)["org"] != o.ID || sw.RefreshToken == "" {
		t.Fatalf("switch %+v", sw)
	}
	var cur struct {
		ID, Name string
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current", token: sw.AccessToken}, 200, &cur)
	if cur.ID != o.ID {
		t.Fatalf("current %+v", cur)
	}
	// The refresh of a switched session stays in the switched organization.
	var rs session
	e.expect(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": sw.RefreshToken}}, 200, &rs)
	if rs.OrganizationID != o.ID {
		t.Fatalf("refresh moved the session to %s", rs.OrganizationID)
	}
	e.problem(req{method: "POST", path: "/api/v1/auth/switch-org", token: s.AccessToken, body: map[string]string{"organization_id": stranger.OrganizationID}}, 403, "not_a_member")
	e.expect(req{method: "PATCH", path: "/api/v1/organizations/current", token: sw.AccessToken, body: map[string]string{"name": "Renamed"}}, 200, &cur)
	if cur.Name != "Renamed" {
		t.Fatalf("rename %+v", cur)
	}
	e.problem(req{method: "PATCH", path: "/api/v1/organizations/current", token: sw.AccessToken, body: map[string]string{"name": ""}}, 400, "validation_failed")
}

func TestMembersAndRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("owner@example.com", "Owner", "Acme")
	admin := e.join(owner, "admin@example.com", "admin", 1)
	mem := e.join(owner, "member@example.com", "member", 1)
	m := e.members(owner.AccessToken)
	if len(m) != 3 || m["admin@example.com"].Role != "admin" || m["member@example.com"].Role != "member" {
		t.Fatalf("members %+v", m)
	}
	ownerID, adminID, memberID := m["owner@example.com"].UserID, m["admin@example.com"].UserID, m["member@example.com"].UserID
	patch := func(tok, id, role string) req {
		return req{method: "PATCH", path: "/api/v1/organizations/current/members/" + id, token: tok, body: map[string]string{"role": role}}
	}
	del := func(tok, id string) req {
		return req{method: "DELETE", path: "/api/v1/organizations/current/members/" + id, token: tok}
	}
	// Members manage nobody; admins cannot touch owners or make them.
	e.problem(patch(mem.AccessToken, adminID, "member"), 403, "forbidden")
	e.problem(patch(admin.AccessToken, ownerID, "member"), 403, "forbidden")
	e.problem(patch(admin.AccessToken, memberID, "owner"), 403, "forbidden")
	e.problem(del(admin.AccessToken, ownerID), 403, "forbidden")
	e.problem(patch(admin.AccessToken, memberID, "boss"), 400, "validation_failed")
	e.expect(patch(admin.AccessToken, memberID, "admin"), 200, nil)
	e.expect(patch(admin.AccessToken, memberID, "member"), 200, nil)
	// The last owner can neither be demoted nor leave.
	e.problem(patch(owner.AccessToken, ownerID, "admin"), 409, "last_owner")
	e.problem(del(owner.AccessToken, ownerID), 409, "last_owner")
	e.expect(patch(owner.AccessToken, adminID, "owner"), 200, nil)
	e.expect(patch(admin.AccessToken, ownerID, "admin"), 200, nil) // admin is an owner now (role re-read, not from the token)
	e.problem(patch(admin.AccessToken, adminID, "member"), 409, "last_owner")
	// Leaving is allowed to anyone; removal to admins.
	e.expect(del(mem.AccessToken, memberID), 204, nil)
	e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: mem.AccessToken}, 403, "not_a_member")
	e.expect(del(admin.AccessToken, ownerID), 204, nil)
	e.problem(del(admin.AccessToken, ownerID), 404, "not_found")
	e.problem(del(admin.AccessToken, "not-a-uuid"), 404, "not_found")

	var log struct {
		Data []struct {
			Action string `json:"action"`
			IP     string `json:"ip"`
		} `json:"data"`
		NextCursor string `json:"next_cursor"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/audit-log?limit=2", token: admin.AccessToken}, 200, &log)
	if len(log.Data) != 2 || log.NextCursor == "" || log.Data[0].Action != "member.removed" || log.Data[0].IP == "" {
		t.Fatalf("audit page %+v", log)
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/audit-log?limit=2&cursor=" + log.NextCursor, token: admin.AccessToken}, 200, &log)
	if len(log.Data) != 2 {
		t.Fatalf("second audit page %+v", log)
	}
	e.problem(req{method: "GET", path: "/api/v1/organizations/current/audit-log?limit=500", token: admin.AccessToken}, 400, "validation_failed")
	e.problem(req{method: "GET", path: "/api/v1/organizations/current/audit-log?cursor=zzz", token: admin.AccessToken}, 400, "validation_failed")
	assertAudit(t, e, admin.OrganizationID, "member.role_changed", "member.removed", "invitation.sent", "invitation.accepted", "user.login")

	// Members cannot read the audit log; the member who left has no organization.
	var me struct {
		Memberships []any `json:"memberships"`
	}
	e.expect(req{method: "GET", path: "/api/v1/me", token: mem.AccessToken}, 200, &me)
	if len(me.Memberships) != 0 {
		t.Fatalf("memberships after leaving: %v", me.Memberships)
	}
	var orphan session
	e.expect(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "member@example.com", "password": password}}, 200, &orphan)
	if orphan.OrganizationID != "" {
		t.Fatalf("org-less login got org %q", orphan.OrganizationID)
	}
	e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: orphan.AccessToken}, 403, "no_organization")
	e.expect(req{method: "POST", path: "/api/v1/organizations", token: orphan.AccessToken, body: map[string]string{"name": "Mine"}}, 201, nil)
}

func TestInvitations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{plans: tinyPlans(t, "unlimited", "unlimited")}) // more people than the free plan's 3 seats
	owner := e.signup("ivy@example.com", "Ivy", "Invites")
	existing := e.signup("existing@example.com", "Existing", "Theirs")
	invite := func(tok, email, role string) req {
		return req{method: "POST", path: "/api/v1/organizations/current/invitations", token: tok, body: map[string]string{"email": email, "role": role}}
	}
	accept := func(tok, token string, body map[string]string) req {
		if body == nil {
			body = map[string]string{}
		}
		body["token"] = token
		return req{method: "POST", path: "/api/v1/invitations/accept", token: tok, body: body}
	}
	var inv struct {
		ID        string `json:"id"`
		ExpiresAt string `json:"expires_at"`
	}
	e.expect(invite(owner.AccessToken, "New@Example.com", "member"), 201, &inv)
	t1 := e.mailToken("new@example.com", "invited you", 1)
	// Re-inviting replaces the pending invitation (and its link).
	var inv2 struct{ ID string }
	e.expect(invite(owner.AccessToken, "new@example.com", "admin"), 201, &inv2)
	t2 := e.mailToken("new@example.com", "invited you", 2)
	var list struct {
		Data []struct{ ID, Email, Role string } `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken}, 200, &list)
	if len(list.Data) != 1 || list.Data[0].ID != inv2.ID || list.Data[0].Role != "admin" {
		t.Fatalf("invitations %+v", list)
	}
	e.problem(accept("", t1, map[string]string{"name": "New", "password": password}), 400, "invalid_token")
	// Resend issues a new link; the old one stops working.
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations/" + inv2.ID + "/resend", token: owner.AccessToken}, 200, nil)
	t3 := e.mailToken("new@example.com", "invited you", 3)
	e.problem(accept("", t2, map[string]string{"name": "New", "password": password}), 400, "invalid_token")
	e.problem(accept("", t3, map[string]string{"name": "New"}), 400, "validation_failed")
	// A logged-in user with another email cannot take it.
	e.problem(accept(existing.AccessToken, t3, nil), 403, "invitation_email_mismatch")
	var acc struct {
		OrganizationID string   `json:"organization_id"`
		Role           string   `json:"role"`
		Session        *session `json:"session"`
	}
	e.expect(accept("", t3, map[string]string{"name": "New", "password": password}), 200, &acc)
	if acc.OrganizationID != owner.OrganizationID || acc.Role != "admin" || acc.Session == nil || acc.Session.Role != "admin" {
		t.Fatalf("accept %+v", acc)
	}
	// Registered through the link: verified, can log in at once.
	e.login("new@example.com", password)
	e.problem(accept("", t3, nil), 400, "invalid_token")
	e.problem(invite(owner.AccessToken, "new@example.com", "member"), 409, "already_member")

	// An invitee who has an account must log in, then accept as themselves.
	e.expect(invite(owner.AccessToken, "existing@example.com", "member"), 201, nil)
	t4 := e.mailToken("existing@example.com", "invited you", 1)
	e.problem(accept("", t4, map[string]string{"name": "X", "password": password}), 401, "login_required")
	acc.Session = nil
	e.expect(accept(existing.AccessToken, t4, nil), 200, &acc)
	if acc.Session != nil || acc.Role != "member" {
		t.Fatalf("logged-in accept %+v", acc)
	}

	// Revoke.
	var inv5 struct{ ID string }
	e.expect(invite(owner.AccessToken, "gone@example.com", "member"), 201, &inv5)
	t5 := e.mailToken("gone@example.com", "invited you", 1)
	e.expect(req{method: "DELETE", path: "/api/v1/organizations/current/invitations/" + inv5.ID, token: owner.AccessToken}, 204, nil)
	e.problem(req{method: "DELETE", path: "/api/v1/organizations/current/invitations/" + inv5.ID, token: owner.AccessToken}, 404, "not_found")
	e.problem(accept("", t5, map[string]string{"name": "Gone", "password": password}), 400, "invalid_token")

	// Only owners invite owners; members invite nobody.
	admin := e.login("new@example.com", password)
	e.problem(invite(admin.AccessToken, "boss@example.com", "owner"), 403, "forbidden")
	member := e.login("existing@example.com", password)
	var sw session
	e.expect(req{method: "POST", path: "/api/v1/auth/switch-org", token: member.AccessToken, body: map[string]string{"organization_id": owner.OrganizationID}}, 200, &sw)
	e.problem(invite(sw.AccessToken, "x@example.com", "member"), 403, "forbidden")
	assertAudit(t, e, owner.OrganizationID, "invitation.sent", "invitation.resent", "invitation.accepted", "invitation.revoked")
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("kim@example.com", "Kim", "Keys")
	create := func(tok, name, role string) req {
		return req{method: "POST", path: "/api/v1/organizations/current/api-keys", token: tok, body: map[string]string{"name": name, "role": role}}
	}
	var k struct {
		ID, Key, Prefix, Role string
	}
	e.expect(create(owner.AccessToken, "CI", "admin"), 201, &k)
	if !strings.HasPrefix(k.Key, "keel_live_"+k.Prefix+"_") {
		t.Fatalf("key %+v", k)
	}
	var stored []byte
	if err := e.db.Owner.Get(&stored, `SELECT secret_hash FROM api_keys WHERE id = $1`, k.ID); err != nil || strings.Contains(k.Key, string(stored)) {
		t.Fatalf("secret not hashed (%v)", err)
	}
	e.problem(create(owner.AccessToken, "Bad", "owner"), 400, "validation_failed")

	var cur struct{ ID string }
	e.expect(req{method: "GET", path: "/api/v1/organizations/current", token: k.Key}, 200, &cur)
	if cur.ID != owner.OrganizationID {
		t.Fatalf("key acted in %s", cur.ID)
	}
	var list struct {
		Data []struct {
			ID         string  `json:"id"`
			Prefix     string  `json:"prefix"`
			Key        *string `json:"key"`
			LastUsedAt *string `json:"last_used_at"`
		} `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/api-keys", token: owner.AccessToken}, 200, &list)
	if len(list.Data) != 1 || list.Data[0].Prefix != k.Prefix || list.Data[0].Key != nil || list.Data[0].LastUsedAt == nil {
		t.Fatalf("keys %+v", list)
	}
	// Keys are not users: they manage no keys (see keys_flow_test.go).
	var mk struct{ ID, Key string }
	e.expect(create(owner.AccessToken, "Reader", "member"), 201, &mk)
	e.problem(create(k.Key, "Nope", "member"), 403, "user_required")
	e.problem(create(mk.Key, "Nope", "member"), 403, "user_required")
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/members", token: mk.Key}, 200, nil)
	e.problem(req{method: "GET", path: "/api/v1/me", token: mk.Key}, 403, "user_required")
	e.problem(req{method: "POST", path: "/api/v1/organizations", token: mk.Key, body: map[string]string{"name": "X"}}, 403, "user_required")

	e.expect(req{method: "PATCH", path: "/api/v1/organizations/current", token: k.Key, body: map[string]string{"name": "Keys renamed"}}, 200, nil)
	e.expect(req{method: "DELETE", path: "/api/v1/organizations/current/api-keys/" + mk.ID, token: owner.AccessToken}, 204, nil)
	e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: mk.Key}, 401, "invalid_api_key")
	e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: k.Key[:len(k.Key)-2] + "xx"}, 401, "invalid_api_key")
	e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: "keel_live_garbage"}, 401, "invalid_api_key")
	assertAudit(t, e, owner.OrganizationID, "api_key.created", "api_key.revoked")
	var actor int
	if err := e.db.Owner.Get(&actor, `SELECT count(*) FROM audit_log WHERE action = 'organization.updated' AND actor_api_key_id = $1`, k.ID); err != nil || actor != 1 {
		t.Fatalf("a key's change not attributed to the key (%d, %v)", actor, err)
	}
}

func TestSuspendedOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup("sue@example.com", "Sue", "Suspended")
	var k struct{ Key string }
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/api-keys", token: s.AccessToken, body: map[string]string{"name": "k", "role": "member"}}, 201, &k)
	var other struct{ ID string }
	e.expect(req{method: "POST", path: "/api/v1/organizations", token: s.AccessToken, body: map[string]string{"name": "Fine"}}, 201, &other)
	if _, err := e.db.Owner.Exec(`UPDATE organizations SET suspended_at = now() WHERE id = $1`, s.OrganizationID); err != nil {
		t.Fatal(err)
	}
	for _, r := range []req{
		{method: "GET", path: "/api/v1/me", token: s.AccessToken},
		{method: "GET", path: "/api/v1/organizations/current", token: k.Key},
		{method: "GET", path: "/api/v1/organizations/current/members", token: s.AccessToken},
	} {
		e.problem(r, http.StatusForbidden, "organization_suspended")
	}
	// The user can still move to an organization that is not suspended, but
	// not back; a new login lands in one that is not suspended.
	var moved session
	e.expect(req{method: "POST", path: "/api/v1/auth/switch-org", token: s.AccessToken, body: map[string]string{"organization_id": other.ID}}, 200, &moved)
	e.expect(req{method: "GET", path: "/api/v1/organizations/current", token: moved.AccessToken}, 200, nil)
	e.problem(req{method: "POST", path: "/api/v1/auth/switch-org", token: moved.AccessToken, body: map[string]string{"organization_id": s.OrganizationID}}, 403, "organization_suspended")
	if fresh := e.login("sue@example.com", password); fresh.OrganizationID != other.ID {
		t.Fatalf("login landed in %s, want the active %s", fresh.OrganizationID, other.ID)
	}
}
