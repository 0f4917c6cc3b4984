package httpapi_test

import (
	"context"
	"testing"

	"github.com/keelhq/keel/internal/admin"
)

// GET /me says whether the caller is a platform admin, so the web app
// shows its admin link without probing /admin (which audits every call).
// Under support access it describes the user acted for, never the admin.
func TestMeSaysPlatformAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{tokenClock: true})
	a := e.newPlatformAdmin("root@ops.test")
	user := e.signup("ulla@example.com", "Ulla", "Ulla Co")

	type me struct {
		ID            string `json:"id"`
		PlatformAdmin *bool  `json:"platform_admin"`
		SupportAccess *struct {
			AdminUserID string `json:"admin_user_id"`
		} `json:"support_access"`
	}
	get := func(token string) me {
		t.Helper()
		var m me
		e.expect(req{method: "GET", path: "/api/v1/me", token: token}, 200, &m)
		if m.PlatformAdmin == nil {
			t.Fatalf("GET /me has no platform_admin")
		}
		return m
	}
	if m := get(a.AccessToken); !*m.PlatformAdmin || m.SupportAccess != nil {
		t.Fatalf("admin's /me: %+v", m)
	}
	u := get(user.AccessToken)
	if *u.PlatformAdmin {
		t.Fatalf("a regular user's /me says platform admin")
	}
	sa, _ := e.impersonate(a, u.ID, map[string]string{"reason": "Ticket 1: web app banner"})
	if m := get(sa.AccessToken); *m.PlatformAdmin || m.ID != u.ID || m.SupportAccess == nil || m.SupportAccess.AdminUserID != a.UserID.String() {
		t.Fatalf("support access /me: %+v", m)
	}
	// PATCH /me answers the same shape.
	var patched me
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: a.AccessToken, body: map[string]string{"name": "Root"}}, 200, &patched)
	if patched.PlatformAdmin == nil || !*patched.PlatformAdmin {
		t.Fatalf("PATCH /me: %+v", patched)
	}
	// A revoke shows on the next call.
	if _, err := admin.SetPlatformAdmin(context.Background(), e.db.Platform, a.Email, false, "test"); err != nil {
		t.Fatal(err)
	}
	if m := get(a.AccessToken); *m.PlatformAdmin {
		t.Fatalf("revoked admin's /me still says platform admin")
	}
}
