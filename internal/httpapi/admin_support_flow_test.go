package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/httpapi"
)

// supportAccess is the answer of POST /admin/users/{id}/impersonate.
type supportAccess struct {
	AccessToken    string    `json:"access_token"`
	TokenType      string    `json:"token_type"`
	ExpiresIn      int       `json:"expires_in"`
	ExpiresAt      time.Time `json:"expires_at"`
	UserID         string    `json:"user_id"`
	OrganizationID *string   `json:"organization_id"`
	Role           *string   `json:"role"`
	ActingAdminID  string    `json:"acting_admin_id"`
}

func (e *env) impersonate(a platformAdmin, userID string, body map[string]string) (supportAccess, map[string]any) {
	e.t.Helper()
	w := e.expect(req{method: "POST", path: "/api/v1/admin/users/" + userID + "/impersonate", token: a.AccessToken, body: body}, 200, nil)
	var sa supportAccess
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &sa); err != nil {
		e.t.Fatal(err)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		e.t.Fatal(err)
	}
	return sa, raw
}

// tokenClaims are the claims of an access token this test reads.
type tokenClaims struct {
	Sub string `json:"sub"`
	Sid string `json:"sid"`
	Act *struct {
		Sub string `json:"sub"`
	} `json:"act"`
	Iat int64 `json:"iat"`
	Exp int64 `json:"exp"`
}

// jwtClaims decodes a JWT's payload (the API verified its signature).
func jwtClaims(t *testing.T, tok string) tokenClaims {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c tokenClaims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// docOperation is one operation of the OpenAPI document.
type docOperation struct {
	method, path, id string
}

// supportForbidden returns the operations the document marks
// x-keel-support-access: false, and every /api/v1/admin operation.
func supportForbidden(t *testing.T) (marked, admin []docOperation) {
	t.Helper()
	doc, err := httpapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			o := docOperation{method: method, path: path, id: op.OperationID}
			if v, ok := op.Extensions["x-keel-support-access"]; ok {
				if b, isBool := v.(bool); !isBool || b {
					t.Errorf("%s %s: x-keel-support-access must be false (or absent), is %v", method, path, v)
				}
				marked = append(marked, o)
			}
			if strings.HasPrefix(path, "/api/v1/admin/") {
				admin = append(admin, o)
			}
		}
	}
	sort.Slice(marked, func(i, j int) bool { return marked[i].id < marked[j].id })
	return marked, admin
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// TestSupportAccess: a platform admin acts as a user, accountably, and
// the token does nothing beyond what the issue allows.
func TestSupportAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{tokenClock: true})
	a := e.newPlatformAdmin("root@ops.test")
	owner := e.signup("olga@example.com", "Olga", "Acme")
	e.join(owner, "bob@example.com", "member", 1)
	ids := e.members(owner.AccessToken)
	bobID, acme := ids["bob@example.com"].UserID, owner.OrganizationID
	path := "/api/v1/admin/users/" + bobID + "/impersonate"
	const reason = "Ticket 4521: Bob cannot see his pumps"

	// Refusals.
	e.problem(req{method: "POST", path: path, token: a.AccessToken, body: map[string]string{}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: path, token: a.AccessToken, body: map[string]string{"reason": ""}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: path, token: a.AccessToken, body: map[string]string{"reason": strings.Repeat("é", 501)}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: path, token: a.AccessToken, body: map[string]string{"reason": "x", "organization_id": "acme"}}, 400, "validation_failed")
	other := e.newPlatformAdmin("second@ops.test")
	e.problem(req{method: "POST", path: "/api/v1/admin/users/" + other.UserID.String() + "/impersonate", token: a.AccessToken,
		body: map[string]string{"reason": reason}}, 403, "cannot_impersonate_admin")
	e.problem(req{method: "POST", path: "/api/v1/admin/users/" + a.UserID.String() + "/impersonate", token: a.AccessToken,
		body: map[string]string{"reason": reason}}, 409, "cannot_impersonate_self")
	stranger := e.signup("sam@example.com", "Sam", "Elsewhere")
	e.problem(req{method: "POST", path: path, token: a.AccessToken,
		body: map[string]string{"reason": reason, "organization_id": stranger.OrganizationID}}, 422, "not_a_member")
	e.problem(req{method: "POST", path: "/api/v1/admin/users/00000000-0000-0000-0000-000000000001/impersonate", token: a.AccessToken,
		body: map[string]string{"reason": reason}}, 404, "not_found")
	e.problem(req{method: "POST", path: path, token: owner.AccessToken, body: map[string]string{"reason": reason}}, 403, "platform_admin_required")
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE action LIKE '%support_access%'`); err != nil || n != 0 {
		t.Fatalf("refusals wrote %d support-access rows (%v)", n, err)
	}

	sa, raw := e.impersonate(a, bobID, map[string]string{"reason": reason})
	if sa.TokenType != "Bearer" || sa.ExpiresIn != 1800 || sa.UserID != bobID || sa.ActingAdminID != a.UserID.String() ||
		sa.OrganizationID == nil || *sa.OrganizationID != acme || sa.Role == nil || *sa.Role != "member" {
		t.Fatalf("support access: %+v", sa)
	}
	// The token's own claims: the user, the admin beside them, no login
	// (sid) to refresh, 30 minutes, the expiry the answer states.
	claims := jwtClaims(t, sa.AccessToken)
	if claims.Sub != bobID || claims.Act == nil || claims.Act.Sub != a.UserID.String() || claims.Sid != "" ||
		claims.Exp-claims.Iat != 1800 || claims.Exp != sa.ExpiresAt.Unix() {
		t.Fatalf("support-access claims %+v, answer %+v", claims, sa)
	}
	if d := sa.ExpiresAt.Sub(e.clock.Now()); d > 30*time.Minute || d < 29*time.Minute {
		t.Fatalf("expires_at %s is not 30 minutes ahead", sa.ExpiresAt)
	}
	if _, ok := raw["refresh_token"]; ok {
		t.Fatalf("support access answered a refresh token: %v", raw)
	}
	tok := sa.AccessToken

	// It acts as the user.
	var me struct {
		Email         string `json:"email"`
		SupportAccess *struct {
			AdminUserID string `json:"admin_user_id"`
		} `json:"support_access"`
	}
	e.expect(req{method: "GET", path: "/api/v1/me", token: tok}, 200, &me)
	if me.Email != "bob@example.com" || me.SupportAccess == nil || me.SupportAccess.AdminUserID != a.UserID.String() {
		t.Fatalf("GET /me as support access shows %+v", me)
	}
	e.expect(req{method: "GET", path: "/api/v1/resources", token: tok}, 200, nil)

	// A write carries both identities.
	var res struct {
		ID string `json:"id"`
	}
	e.expect(req{method: "POST", path: "/api/v1/resources", token: tok, body: map[string]any{"name": "Pump seen by support"}}, 201, &res)
	var both struct {
		Actor     string `db:"actor"`
		ActingFor string `db:"acting_for"`
	}
	if err := e.db.Owner.Get(&both, `SELECT actor_user_id::text AS actor, acting_for_user_id::text AS acting_for FROM audit_log
		WHERE org_id = $1 AND action = 'resource.created' AND target_id = $2`, acme, res.ID); err != nil ||
		both.Actor != a.UserID.String() || both.ActingFor != bobID {
		t.Fatalf("resource.created row %+v (%v), want actor admin, acting for bob", both, err)
	}
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = 'support_access.write'
		AND actor_user_id = $2 AND acting_for_user_id = $3`, acme, a.UserID, bobID); err != nil || n != 1 {
		t.Fatalf("%d support_access.write rows (%v), want 1", n, err)
	}

	// No /admin route, driven from the document.
	marked, adminOps := supportForbidden(t)
	if len(adminOps) < 5 {
		t.Fatalf("only %d admin operations in the document", len(adminOps))
	}
	for _, o := range append(adminOps, marked...) {
		p := pathParam.ReplaceAllString(o.path, bobID)
		w := e.do(req{method: o.method, path: p, token: tok, body: map[string]any{}})
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"support_access_forbidden"`) {
			t.Errorf("%s %s (%s) with support access: %d %s", o.method, p, o.id, w.Code, w.Body)
		}
	}
	// The credential routes are among the marked ones.
	names := map[string]bool{}
	for _, o := range marked {
		names[o.method+" "+o.path] = true
	}
	for _, want := range []string{"PATCH /api/v1/me", "POST /api/v1/auth/2fa/setup", "POST /api/v1/auth/2fa/enable",
		"POST /api/v1/auth/2fa/disable", "POST /api/v1/organizations/current/api-keys", "DELETE /api/v1/organizations/current/api-keys/{id}",
		"POST /api/v1/auth/switch-org", "POST /api/v1/organizations", "POST /api/v1/invitations/accept"} {
		if !names[want] {
			t.Errorf("%s is not marked x-keel-support-access: false", want)
		}
	}

	// There is no refresh token, and refresh makes none.
	e.problem(req{method: "POST", path: "/api/v1/auth/refresh", token: tok, body: map[string]string{}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": tok}}, 400, "validation_failed")
	var sessions int
	if err := e.db.Owner.Get(&sessions, `SELECT count(DISTINCT family_id) FROM refresh_tokens WHERE user_id = $1`, bobID); err != nil || sessions != 1 {
		t.Fatalf("bob has %d logins (%v), want only his own", sessions, err)
	}

	// The organization's owner sees it, with the reason.
	var log struct {
		Data []struct {
			Action          string          `json:"action"`
			ActorUserID     string          `json:"actor_user_id"`
			ActingForUserID string          `json:"acting_for_user_id"`
			Details         json.RawMessage `json:"details"`
		} `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/audit-log?limit=100", token: owner.AccessToken}, 200, &log)
	found := false
	for _, r := range log.Data {
		if r.Action != "support_access.started" {
			continue
		}
		var det struct {
			Reason    string    `json:"reason"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		found = json.Unmarshal(r.Details, &det) == nil && det.Reason == reason && det.ExpiresAt.Equal(sa.ExpiresAt) &&
			r.ActorUserID == a.UserID.String() && r.ActingForUserID == bobID
	}
	if !found {
		t.Fatalf("no support_access.started row with the reason in the owner's audit log: %+v", log.Data)
	}
	if c := e.platformRows(a.UserID.String(), "admin.support_access_started", bobID); c != 1 {
		t.Fatalf("%d admin.support_access_started rows, want 1", c)
	}

	// 30 minutes on, the token is dead, and nothing can renew it.
	e.clock.Advance(29 * time.Minute)
	e.expect(req{method: "GET", path: "/api/v1/resources", token: tok}, 200, nil)
	e.clock.Advance(90 * time.Second)
	e.problem(req{method: "GET", path: "/api/v1/resources", token: tok}, 401, "invalid_token")
	e.problem(req{method: "GET", path: "/api/v1/me", token: tok}, 401, "invalid_token")
}

// TestSupportAccessOrganization: the token's organization is the one asked
// for, else the oldest one not suspended, else none; a disabled user is
// refused, and disabling the user ends a support access under way.
func TestSupportAccessOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a := e.newPlatformAdmin("root@ops.test")
	owner := e.signup("olga@example.com", "Olga", "Acme")
	e.join(owner, "bob@example.com", "admin", 1)
	bob := e.login("bob@example.com", password)
	var side struct {
		ID string `json:"id"`
	}
	e.expect(req{method: "POST", path: "/api/v1/organizations", token: bob.AccessToken, body: map[string]string{"name": "Side"}}, 201, &side)
	bobID := e.members(owner.AccessToken)["bob@example.com"].UserID

	sa, _ := e.impersonate(a, bobID, map[string]string{"reason": "default organization"})
	if *sa.OrganizationID != owner.OrganizationID || *sa.Role != "admin" {
		t.Fatalf("default organization %v role %v, want Acme (oldest) as admin", *sa.OrganizationID, *sa.Role)
	}
	inAcme := sa.AccessToken
	sa, _ = e.impersonate(a, bobID, map[string]string{"reason": "his side project", "organization_id": side.ID})
	if *sa.OrganizationID != side.ID || *sa.Role != "owner" {
		t.Fatalf("asked-for organization %v role %v", *sa.OrganizationID, *sa.Role)
	}
	var cur struct {
		Name string `json:"name"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current", token: sa.AccessToken}, 200, &cur)
	if cur.Name != "Side" {
		t.Fatalf("support access reached %q", cur.Name)
	}
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = 'support_access.started'`, side.ID); err != nil || n != 1 {
		t.Fatalf("%d support_access.started rows in Side (%v)", n, err)
	}

	// A user with no organization (removed from their only one) gets a
	// token with none.
	e.join(owner, "lee@example.com", "member", 1)
	leeID := e.members(owner.AccessToken)["lee@example.com"].UserID
	e.expect(req{method: "DELETE", path: "/api/v1/organizations/current/members/" + leeID, token: owner.AccessToken}, 204, nil)
	ls, _ := e.impersonate(a, leeID, map[string]string{"reason": "stuck after removal"})
	if ls.OrganizationID != nil || ls.Role != nil {
		t.Fatalf("a user without organizations got %+v", ls)
	}
	var me struct {
		Email string `json:"email"`
	}
	e.expect(req{method: "GET", path: "/api/v1/me", token: ls.AccessToken}, 200, &me)
	if me.Email != "lee@example.com" {
		t.Fatalf("GET /me shows %q", me.Email)
	}
	if c := e.platformRows(a.UserID.String(), "admin.support_access_started", leeID); c != 1 {
		t.Fatalf("%d platform rows for a support access with no organization", c)
	}

	// A suspended organization is skipped by default and refused by name.
	if _, err := e.db.Owner.Exec(`UPDATE organizations SET suspended_at = now() WHERE id = $1`, owner.OrganizationID); err != nil {
		t.Fatal(err)
	}
	e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: inAcme}, 403, "organization_suspended")
	sa, _ = e.impersonate(a, bobID, map[string]string{"reason": "Acme is suspended"})
	if *sa.OrganizationID != side.ID {
		t.Fatalf("default skipped no suspended organization: %v", *sa.OrganizationID)
	}
	e.problem(req{method: "POST", path: "/api/v1/admin/users/" + bobID + "/impersonate", token: a.AccessToken,
		body: map[string]string{"reason": "x", "organization_id": owner.OrganizationID}}, 409, "organization_suspended")

	// Disabling the user ends the support access too; a disabled user is
	// refused.
	e.expect(req{method: "POST", path: "/api/v1/admin/users/" + bobID + "/disable", token: a.AccessToken,
		body: map[string]string{"reason": "fraud"}}, 200, nil)
	e.problem(req{method: "GET", path: "/api/v1/organizations/current", token: sa.AccessToken}, 401, "account_disabled")
	e.problem(req{method: "POST", path: "/api/v1/admin/users/" + bobID + "/impersonate", token: a.AccessToken,
		body: map[string]string{"reason": "look"}}, 409, "user_disabled")
}
