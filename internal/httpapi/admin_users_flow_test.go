package httpapi_test

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// adminUser is an item of GET /admin/users.
type adminUser struct {
	ID               string     `json:"id"`
	Email            string     `json:"email"`
	Name             string     `json:"name"`
	EmailVerified    bool       `json:"email_verified"`
	TwoFactorEnabled bool       `json:"two_factor_enabled"`
	PlatformAdmin    bool       `json:"platform_admin"`
	DisabledAt       *time.Time `json:"disabled_at"`
	LastLoginAt      *time.Time `json:"last_login_at"`
	Organizations    int        `json:"organizations"`
}

// adminUserDetail is GET /admin/users/{id}.
type adminUserDetail struct {
	adminUser
	DisabledReason *string `json:"disabled_reason"`
	Memberships    []struct {
		OrganizationID string `json:"organization_id"`
		Name           string `json:"name"`
		Role           string `json:"role"`
		Suspended      bool   `json:"suspended"`
	} `json:"memberships"`
	Sessions []struct {
		ID                   string  `json:"id"`
		SecondFactor         *string `json:"second_factor"`
		ActiveOrganizationID *string `json:"active_organization_id"`
	} `json:"sessions"`
}

type adminUserPage struct {
	Data       []adminUser `json:"data"`
	NextCursor string      `json:"next_cursor"`
}

func (e *env) adminUsers(a platformAdmin, query string) adminUserPage {
	e.t.Helper()
	var p adminUserPage
	e.expect(req{method: "GET", path: "/api/v1/admin/users?" + query, token: a.AccessToken}, 200, &p)
	return p
}

func (e *env) adminUser(a platformAdmin, id string) adminUserDetail {
	e.t.Helper()
	var d adminUserDetail
	e.expect(req{method: "GET", path: "/api/v1/admin/users/" + id, token: a.AccessToken}, 200, &d)
	return d
}

func emails(us []adminUser) string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.Email
	}
	return strings.Join(out, ",")
}

// platformRows counts the platform audit rows (org_id NULL) of action by
// actor about target ("" for any).
func (e *env) platformRows(actor, action, target string) int {
	e.t.Helper()
	var n int
	err := e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id IS NULL AND actor_user_id = $1
		AND action = $2 AND ($3 = '' OR target_id = $3)`, actor, action, target)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestAdminUsersSearchAndDetail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a := e.newPlatformAdmin("root@ops.test")
	owner := e.signup("olga@example.com", "Olga Owner", "Acme")
	e.join(owner, "bob@example.com", "member", 1)
	e.clock.Advance(time.Second)
	e.signup("carla_x@other.test", "Carla 100%", "Carla Co")
	bobID := e.members(owner.AccessToken)["bob@example.com"].UserID

	if got := emails(e.adminUsers(a, "q=OLGA").Data); got != "olga@example.com" {
		t.Fatalf("q=OLGA found %q", got)
	}
	if got := emails(e.adminUsers(a, "q=carla%20100").Data); got != "carla_x@other.test" {
		t.Fatalf("search by name found %q", got)
	}
	// % and _ are characters, not patterns.
	if got := emails(e.adminUsers(a, "q="+url.QueryEscape("%")).Data); got != "carla_x@other.test" {
		t.Fatalf("q=%% found %q", got)
	}
	if got := emails(e.adminUsers(a, "q="+url.QueryEscape("a_x")).Data); got != "carla_x@other.test" {
		t.Fatalf("q=a_x found %q", got)
	}
	byID := e.adminUsers(a, "q="+bobID).Data
	if len(byID) != 1 || byID[0].ID != bobID || byID[0].Organizations != 1 || byID[0].PlatformAdmin {
		t.Fatalf("q=<bob's id> found %+v", byID)
	}

	// Newest first, paged.
	all := emails(e.adminUsers(a, "").Data)
	if all != "carla_x@other.test,bob@example.com,olga@example.com,root@ops.test" {
		t.Fatalf("all users newest first: %q", all)
	}
	var paged []string
	cursor := ""
	for i := 0; ; i++ {
		p := e.adminUsers(a, "limit=1&cursor="+cursor)
		paged = append(paged, emails(p.Data))
		if p.NextCursor == "" || i > 5 {
			break
		}
		cursor = p.NextCursor
	}
	if strings.Join(paged, ",") != all {
		t.Fatalf("pages of 1: %v, want %s", paged, all)
	}
	e.problem(req{method: "GET", path: "/api/v1/admin/users?limit=0", token: a.AccessToken}, 400, "validation_failed")
	e.problem(req{method: "GET", path: "/api/v1/admin/users?cursor=nope", token: a.AccessToken}, 400, "validation_failed")

	root := e.adminUsers(a, "q=root@ops.test").Data
	if len(root) != 1 || !root[0].PlatformAdmin || !root[0].TwoFactorEnabled {
		t.Fatalf("the admin: %+v", root)
	}

	olgaID := e.members(owner.AccessToken)["olga@example.com"].UserID
	d := e.adminUser(a, olgaID)
	if d.Email != "olga@example.com" || !d.EmailVerified || d.LastLoginAt == nil || d.DisabledAt != nil || d.DisabledReason != nil ||
		len(d.Memberships) != 1 || d.Memberships[0].Name != "Acme" || d.Memberships[0].Role != "owner" || d.Memberships[0].Suspended {
		t.Fatalf("olga's detail: %+v", d)
	}
	if len(d.Sessions) != 1 || d.Sessions[0].SecondFactor != nil || d.Sessions[0].ActiveOrganizationID == nil ||
		*d.Sessions[0].ActiveOrganizationID != d.Memberships[0].OrganizationID {
		t.Fatalf("olga's sessions: %+v", d.Sessions)
	}
	// A logout ends the session; it leaves the list.
	e.expect(req{method: "POST", path: "/api/v1/auth/logout", body: map[string]string{"refresh_token": owner.RefreshToken}}, 204, nil)
	if s := e.adminUser(a, olgaID).Sessions; len(s) != 0 {
		t.Fatalf("sessions after logout: %+v", s)
	}
	adminSessions := e.adminUser(a, a.UserID.String()).Sessions
	if len(adminSessions) == 0 || adminSessions[0].SecondFactor == nil || *adminSessions[0].SecondFactor != "totp" {
		t.Fatalf("the admin's TOTP login: %+v", adminSessions)
	}

	e.problem(req{method: "GET", path: "/api/v1/admin/users/" + "00000000-0000-0000-0000-000000000001", token: a.AccessToken}, 404, "not_found")
	e.problem(req{method: "GET", path: "/api/v1/admin/users/not-a-uuid", token: a.AccessToken}, 404, "not_found")

	// Every read is audited with the admin as actor.
	admin := a.UserID.String()
	if n := e.platformRows(admin, "admin.user_viewed", olgaID); n != 2 {
		t.Fatalf("%d admin.user_viewed rows for olga, want 2", n)
	}
	var q string
	err := e.db.Owner.Get(&q, `SELECT details->>'q' FROM audit_log WHERE org_id IS NULL AND actor_user_id = $1
		AND action = 'admin.users_listed' AND details->>'q' = 'OLGA'`, admin)
	if err != nil || q != "OLGA" {
		t.Fatalf("admin.users_listed row with the query: %q %v", q, err)
	}

	// Not for a non-admin.
	e.problem(req{method: "GET", path: "/api/v1/admin/users", token: owner.AccessToken}, 403, "platform_admin_required")
	bob := e.login("bob@example.com", password)
	e.problem(req{method: "GET", path: "/api/v1/admin/users", token: bob.AccessToken}, 403, "platform_admin_required")
	e.problem(req{method: "GET", path: "/api/v1/admin/users/" + bobID, token: bob.AccessToken}, 403, "platform_admin_required")
}

// TestAdminDisableUser follows a disabled user's every credential: each
// stops at once, and enabling brings back the password, not the sessions
// or keys.
func TestAdminDisableUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a := e.newPlatformAdmin("root@ops.test")
	owner := e.signup("olga@example.com", "Olga", "Acme")
	mallory := e.join(owner, "mallory@example.com", "admin", 1)
	_, key := e.apiKey(mallory.AccessToken, "backdoor", "admin")
	_, ownerKey := e.apiKey(owner.AccessToken, "ci", "member")
	// A second organization of hers, with a key there too, and a second login.
	var side struct {
		ID string `json:"id"`
	}
	e.expect(req{method: "POST", path: "/api/v1/organizations", token: mallory.AccessToken, body: map[string]string{"name": "Side"}}, 201, &side)
	second := e.login("mallory@example.com", password)
	var sw session
	e.expect(req{method: "POST", path: "/api/v1/auth/switch-org", token: second.AccessToken,
		body: map[string]string{"organization_id": side.ID}}, 200, &sw)
	_, sideKey := e.apiKey(sw.AccessToken, "side", "member")
	e.expect(req{method: "GET", path: "/api/v1/resources", token: mallory.AccessToken}, 200, nil)

	malloryID := e.members(owner.AccessToken)["mallory@example.com"].UserID
	path := "/api/v1/admin/users/" + malloryID
	tok := a.AccessToken
	e.problem(req{method: "POST", path: path + "/disable", token: tok, body: map[string]string{}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: path + "/disable", token: tok, body: map[string]string{"reason": "  "}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: path + "/disable", token: tok, body: map[string]string{"reason": strings.Repeat("x", 501)}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: "/api/v1/admin/users/" + a.UserID.String() + "/disable", token: tok,
		body: map[string]string{"reason": "oops"}}, 409, "cannot_disable_self")
	e.problem(req{method: "POST", path: "/api/v1/admin/users/00000000-0000-0000-0000-000000000001/disable", token: tok,
		body: map[string]string{"reason": "nobody"}}, 404, "not_found")
	// The refusals changed nothing.
	e.expect(req{method: "GET", path: "/api/v1/resources", token: mallory.AccessToken}, 200, nil)

	var d adminUserDetail
	e.expect(req{method: "POST", path: path + "/disable", token: tok, body: map[string]string{"reason": "Card testing from her keys"}}, 200, &d)
	if d.DisabledAt == nil || d.DisabledReason == nil || *d.DisabledReason != "Card testing from her keys" || len(d.Sessions) != 0 {
		t.Fatalf("disabled detail: %+v", d)
	}

	// Every credential stops at once.
	for _, tk := range []string{mallory.AccessToken, sw.AccessToken} {
		e.problem(req{method: "GET", path: "/api/v1/resources", token: tk}, 401, "account_disabled")
		e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: tk}, 401, "account_disabled")
		e.problem(req{method: "POST", path: "/api/v1/resources", token: tk, body: map[string]any{"name": "more"}}, 401, "account_disabled")
		e.problem(req{method: "GET", path: "/api/v1/me", token: tk}, 401, "account_disabled")
		e.problem(req{method: "PATCH", path: "/api/v1/me", token: tk, body: map[string]string{"name": "M"}}, 401, "account_disabled")
	}
	for _, rt := range []string{mallory.RefreshToken, second.RefreshToken, sw.RefreshToken} {
		w := e.do(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": rt}})
		if w.Code != 401 {
			t.Fatalf("refresh of a disabled user's token: %d %s", w.Code, w.Body)
		}
	}
	for _, k := range []string{key, sideKey} {
		if w := e.do(req{method: "GET", path: "/api/v1/organizations/current", token: k}); w.Code != 401 {
			t.Fatalf("a disabled user's API key: %d %s", w.Code, w.Body)
		}
	}
	e.problem(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "mallory@example.com", "password": password}},
		403, "account_disabled")
	var live int
	if err := e.db.Owner.Get(&live, `SELECT (SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL)
		+ (SELECT count(*) FROM api_keys WHERE created_by = $1 AND revoked_at IS NULL)`, malloryID); err != nil || live != 0 {
		t.Fatalf("%d live tokens or keys of the disabled user (%v)", live, err)
	}

	// Another member of the organization is unaffected.
	e.expect(req{method: "GET", path: "/api/v1/organizations/current", token: owner.AccessToken}, 200, nil)
	e.expect(req{method: "GET", path: "/api/v1/resources", token: ownerKey}, 200, nil)
	var refreshed session
	e.expect(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": owner.RefreshToken}}, 200, &refreshed)

	// Audited: a platform row and one in each of her organizations.
	admin := a.UserID.String()
	if n := e.platformRows(admin, "admin.user_disabled", malloryID); n != 1 {
		t.Fatalf("%d platform admin.user_disabled rows, want 1", n)
	}
	var rows []struct {
		Org     string `db:"org"`
		Details []byte `db:"details"`
	}
	if err := e.db.Owner.Select(&rows, `SELECT o.name AS org, a.details FROM audit_log a JOIN organizations o ON o.id = a.org_id
		WHERE a.action = 'admin.user_disabled' AND a.actor_user_id = $1 AND a.target_id = $2 ORDER BY o.name`, admin, malloryID); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Org != "Acme" || rows[1].Org != "Side" {
		t.Fatalf("organization rows: %+v", rows)
	}
	for _, r := range rows {
		var det struct {
			Reason   string `json:"reason"`
			Sessions int    `json:"sessions_revoked"`
			Keys     int    `json:"api_keys_revoked"`
		}
		if err := json.Unmarshal(r.Details, &det); err != nil || det.Reason != "Card testing from her keys" || det.Sessions != 2 || det.Keys != 1 {
			t.Fatalf("%s row details %s (%v)", r.Org, r.Details, err)
		}
	}
	// The organization's owner reads it in their audit log.
	var log struct {
		Data []struct {
			Action      string `json:"action"`
			ActorUserID string `json:"actor_user_id"`
		} `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/audit-log", token: refreshed.AccessToken}, 200, &log)
	if len(log.Data) == 0 || log.Data[0].Action != "admin.user_disabled" || log.Data[0].ActorUserID != admin {
		t.Fatalf("owner's audit log head: %+v", log.Data[:min(len(log.Data), 3)])
	}

	// Again: the same state, the first reason kept.
	var again adminUserDetail
	e.expect(req{method: "POST", path: path + "/disable", token: tok, body: map[string]string{"reason": "second thoughts"}}, 200, &again)
	if again.DisabledAt == nil || !again.DisabledAt.Equal(*d.DisabledAt) || *again.DisabledReason != "Card testing from her keys" {
		t.Fatalf("second disable: %+v", again)
	}

	// Enable: the password works again; old sessions and keys stay dead.
	var en adminUserDetail
	e.expect(req{method: "POST", path: path + "/enable", token: tok}, 200, &en)
	if en.DisabledAt != nil || en.DisabledReason != nil || len(en.Sessions) != 0 {
		t.Fatalf("enabled detail: %+v", en)
	}
	fresh := e.login("mallory@example.com", password)
	e.expect(req{method: "GET", path: "/api/v1/resources", token: fresh.AccessToken}, 200, nil)
	for _, rt := range []string{mallory.RefreshToken, second.RefreshToken, sw.RefreshToken} {
		if w := e.do(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": rt}}); w.Code != 401 {
			t.Fatalf("an old refresh token after enable: %d %s", w.Code, w.Body)
		}
	}
	for _, k := range []string{key, sideKey} {
		if w := e.do(req{method: "GET", path: "/api/v1/organizations/current", token: k}); w.Code != 401 {
			t.Fatalf("an old API key after enable: %d %s", w.Code, w.Body)
		}
	}
	if n := e.platformRows(admin, "admin.user_enabled", malloryID); n != 1 {
		t.Fatalf("%d admin.user_enabled rows, want 1", n)
	}
}

// TestAdminDisableConcurrent: admins disabling one user at once record one
// disable, revoke once, and all answer the same state.
func TestAdminDisableConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a := e.newPlatformAdmin("root@ops.test")
	b := e.newPlatformAdmin("deputy@ops.test")
	owner := e.signup("olga@example.com", "Olga", "Acme")
	e.join(owner, "mallory@example.com", "admin", 1)
	malloryID := e.members(owner.AccessToken)["mallory@example.com"].UserID
	path := "/api/v1/admin/users/" + malloryID

	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tok := []string{a.AccessToken, b.AccessToken}[i%2]
			codes[i] = e.do(req{method: "POST", path: path + "/disable", token: tok,
				body: map[string]string{"reason": "race " + strconv.Itoa(i)}}).Code
		}(i)
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("disable %d: %d", i, c)
		}
	}
	var rows []struct {
		Already bool `db:"already"`
		N       int  `db:"n"`
	}
	if err := e.db.Owner.Select(&rows, `SELECT COALESCE((details->>'already_disabled')::bool, false) AS already, count(*) AS n
		FROM audit_log WHERE action = 'admin.user_disabled' AND target_id = $1 AND org_id IS NULL GROUP BY 1 ORDER BY 1`, malloryID); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Already || rows[0].N != 1 || rows[1].N != 5 {
		t.Fatalf("platform rows: %+v, want one disable and five already_disabled", rows)
	}
	var orgRows int
	if err := e.db.Owner.Get(&orgRows, `SELECT count(*) FROM audit_log WHERE action = 'admin.user_disabled'
		AND target_id = $1 AND org_id = $2`, malloryID, owner.OrganizationID); err != nil || orgRows != 1 {
		t.Fatalf("%d rows in the organization (%v), want 1", orgRows, err)
	}
	e.problem(req{method: "POST", path: "/api/v1/admin/users/00000000-0000-0000-0000-000000000001/enable", token: a.AccessToken}, 404, "not_found")
	e.problem(req{method: "POST", path: path + "/enable", token: owner.AccessToken}, 403, "platform_admin_required")
}
