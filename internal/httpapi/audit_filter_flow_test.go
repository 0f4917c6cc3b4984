package httpapi_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

type auditPage struct {
	Data []struct {
		Action      string `json:"action"`
		ActorUserID string `json:"actor_user_id"`
		TargetID    string `json:"target_id"`
		IP          string `json:"ip"`
		CreatedAt   string `json:"created_at"`
	} `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// The organization's audit log filters by action (exact or a prefix),
// actor and time, combined and across pages; a followed email-change link
// is audited as user.email_changed.
func TestAuditLogFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup("ava@example.com", "Ava", "Ava Co")
	var me struct {
		ID string `json:"id"`
	}
	e.expect(req{method: "GET", path: "/api/v1/me", token: s.AccessToken}, 200, &me)
	const pw2 = "a second long passphrase 9"
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken, body: map[string]string{
		"current_password": password, "new_password": pw2}}, 200, nil)
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken, body: map[string]string{
		"email": "ava2@example.com", "current_password": pw2}}, 200, nil)
	tok := e.mailToken("ava2@example.com", "Confirm your email", 1)
	e.expect(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": tok}}, 204, nil)
	e.login("ava2@example.com", pw2)

	get := func(q url.Values) auditPage {
		t.Helper()
		var p auditPage
		e.expect(req{method: "GET", path: "/api/v1/organizations/current/audit-log?" + q.Encode(), token: s.AccessToken}, 200, &p)
		return p
	}
	actions := func(p auditPage) string {
		var a []string
		for _, d := range p.Data {
			a = append(a, d.Action)
		}
		return strings.Join(a, " ")
	}

	// Exact action, with the actor and the client IP.
	p := get(url.Values{"action": {"user.email_changed"}})
	if len(p.Data) != 1 || p.Data[0].ActorUserID != me.ID || p.Data[0].TargetID != me.ID || p.Data[0].IP == "" {
		t.Fatalf("email_changed entries %+v", p)
	}
	changedAt := p.Data[0].CreatedAt

	// A prefix ending in a dot: every account event and nothing else, paged.
	var got []string
	q := url.Values{"action": {"user."}, "limit": {"2"}}
	for {
		p = get(q)
		for _, d := range p.Data {
			if !strings.HasPrefix(d.Action, "user.") {
				t.Fatalf("user. filter returned %s", d.Action)
			}
			got = append(got, d.Action)
		}
		if p.NextCursor == "" {
			break
		}
		q.Set("cursor", p.NextCursor)
	}
	if want := "user.login user.email_changed user.email_change_requested user.password_changed user.login"; strings.Join(got, " ") != want {
		t.Fatalf("user. entries %q, want %q", strings.Join(got, " "), want)
	}
	// "user" without the dot is one (unknown) action, not a prefix; LIKE's
	// wildcards in a prefix match literally.
	if p = get(url.Values{"action": {"user"}}); len(p.Data) != 0 {
		t.Fatalf("action=user matched %s", actions(p))
	}
	if p = get(url.Values{"action": {"%."}}); len(p.Data) != 0 {
		t.Fatalf("action=%%. matched %s", actions(p))
	}

	// Actor: this user did all of it; nobody else did anything.
	if p = get(url.Values{"actor_user_id": {me.ID}, "action": {"organization.created"}}); len(p.Data) != 1 {
		t.Fatalf("the owner's organization.created: %s", actions(p))
	}
	if p = get(url.Values{"actor_user_id": {uuid.NewString()}}); len(p.Data) != 0 {
		t.Fatalf("a stranger's entries: %s", actions(p))
	}

	// Time: since is inclusive, until exclusive.
	if p = get(url.Values{"since": {changedAt}, "action": {"user."}}); actions(p) != "user.login user.email_changed" {
		t.Fatalf("since %s: %s", changedAt, actions(p))
	}
	if p = get(url.Values{"until": {changedAt}, "action": {"user.email_changed"}}); len(p.Data) != 0 {
		t.Fatalf("until %s: %s", changedAt, actions(p))
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if p = get(url.Values{"since": {future}}); len(p.Data) != 0 {
		t.Fatalf("since the future: %s", actions(p))
	}

	// Malformed filters are named.
	for _, bad := range []string{"actor_user_id=ava", "since=yesterday", "until=2026-13-01T00:00:00Z",
		"since=" + url.QueryEscape(changedAt) + "&until=" + url.QueryEscape(changedAt), "action=" + strings.Repeat("a", 257)} {
		w := e.problem(req{method: "GET", path: "/api/v1/organizations/current/audit-log?" + bad, token: s.AccessToken}, 400, "validation_failed")
		field := strings.SplitN(bad, "=", 2)[0]
		if strings.HasPrefix(bad, "since=") && strings.Contains(bad, "until=") {
			field = "until"
		}
		if !strings.Contains(w.Body.String(), `"field":"`+field+`"`) {
			t.Fatalf("%s: %s", bad, w.Body.String())
		}
	}
}
