package httpapi_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// adminOrg is an item of GET /admin/organizations.
type adminOrg struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	SuspendedAt *time.Time `json:"suspended_at"`
	Plan        struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"plan"`
	Status      string `json:"status"`
	MemberCount int64  `json:"member_count"`
}

// adminAudit is an entry of GET /admin/audit-log.
type adminAudit struct {
	ID             string          `json:"id"`
	OrganizationID *string         `json:"organization_id"`
	Action         string          `json:"action"`
	ActorUserID    *string         `json:"actor_user_id"`
	TargetID       string          `json:"target_id"`
	Details        json.RawMessage `json:"details"`
	CreatedAt      time.Time       `json:"created_at"`
}

// adminOrgDetail is GET /admin/organizations/{id}.
type adminOrgDetail struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	SuspendedAt     *time.Time `json:"suspended_at"`
	SuspendedReason string     `json:"suspended_reason"`
	Plan            struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"plan"`
	Subscription struct {
		PlanID               *string    `json:"plan_id"`
		Status               string     `json:"status"`
		Interval             *string    `json:"interval"`
		CurrentPeriodEnd     *time.Time `json:"current_period_end"`
		StripeCustomerID     *string    `json:"stripe_customer_id"`
		StripeSubscriptionID *string    `json:"stripe_subscription_id"`
		Quantity             *int64     `json:"quantity"`
	} `json:"subscription"`
	MemberCount int64 `json:"member_count"`
	Members     []struct {
		UserID string `json:"user_id"`
		Email  string `json:"email"`
		Name   string `json:"name"`
		Role   string `json:"role"`
	} `json:"members"`
	Usage []struct {
		Metric string `json:"metric"`
		Used   int64  `json:"used"`
		Limit  *int64 `json:"limit"`
	} `json:"usage"`
	RecentAudit []adminAudit `json:"recent_audit"`
}

// auditRows counts orgID's audit rows with action, read as the superuser.
func (e *env) auditRows(orgID, action string) []string {
	e.t.Helper()
	var details []string
	if err := e.db.Owner.Select(&details, `SELECT details::text FROM audit_log WHERE org_id = $1 AND action = $2 ORDER BY created_at, id`,
		orgID, action); err != nil {
		e.t.Fatal(err)
	}
	return details
}

// TestAdminSuspendOrg: a suspended organization's members and API keys
// are refused on the very next request, another organization is not, and
// unsuspending restores them; both actions are in the organization's log.
func TestAdminSuspendOrg(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	adm := e.newPlatformAdmin("ops@suspend.test")
	owner := e.signup("owner@suspend.test", "Owner", "Abusers")
	member := e.join(owner, "member@suspend.test", "member", 1)
	_, key := e.apiKey(owner.AccessToken, "ci", "member")
	other := e.signup("owner@other.test", "Other", "Bystanders")
	org := owner.OrganizationID
	tenantCalls := func(status int, code string) {
		t.Helper()
		for _, tok := range []string{owner.AccessToken, member.AccessToken, key} {
			for _, path := range []string{"/api/v1/organizations/current", "/api/v1/resources"} {
				if code == "" {
					e.expect(req{method: "GET", path: path, token: tok}, status, nil)
				} else {
					e.problem(req{method: "GET", path: path, token: tok}, status, code)
				}
			}
		}
		e.expect(req{method: "GET", path: "/api/v1/resources", token: other.AccessToken}, 200, nil)
	}
	tenantCalls(200, "")

	base := "/api/v1/admin/organizations/" + org
	e.problem(req{method: "POST", path: base + "/suspend", token: adm.AccessToken, body: map[string]string{}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: base + "/suspend", token: adm.AccessToken, body: map[string]string{"reason": "  "}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: base + "/suspend", token: adm.AccessToken, body: map[string]string{"reason": strings.Repeat("x", 501)}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: "/api/v1/admin/organizations/" + uuid.NewString() + "/suspend", token: adm.AccessToken,
		body: map[string]string{"reason": "spam"}}, 404, "not_found")

	var d adminOrgDetail
	e.expect(req{method: "POST", path: base + "/suspend", token: adm.AccessToken, body: map[string]string{"reason": "phishing pages, ticket 4411"}}, 200, &d)
	if d.SuspendedAt == nil || d.SuspendedReason != "phishing pages, ticket 4411" || d.ID != org {
		t.Fatalf("suspend answered %+v", d)
	}
	first := *d.SuspendedAt

	tenantCalls(403, "organization_suspended")
	// GET /me tells the member why their organization's token is refused.
	e.problem(req{method: "GET", path: "/api/v1/me", token: member.AccessToken}, 403, "organization_suspended")
	// Another organization's members are not affected.
	e.expect(req{method: "GET", path: "/api/v1/me", token: other.AccessToken}, 200, nil)

	// Suspending again keeps the first time and replaces the reason.
	e.clock.Advance(time.Hour)
	e.expect(req{method: "POST", path: base + "/suspend", token: adm.AccessToken, body: map[string]string{"reason": "still phishing"}}, 200, &d)
	if d.SuspendedAt == nil || !d.SuspendedAt.Equal(first) || d.SuspendedReason != "still phishing" {
		t.Fatalf("second suspend: %v %q, want %v", d.SuspendedAt, d.SuspendedReason, first)
	}

	e.expect(req{method: "POST", path: base + "/unsuspend", token: adm.AccessToken, body: map[string]string{"reason": "cleaned up"}}, 200, &d)
	if d.SuspendedAt != nil || d.SuspendedReason != "" {
		t.Fatalf("unsuspend answered %+v", d)
	}
	tenantCalls(200, "")
	e.expect(req{method: "GET", path: "/api/v1/me", token: member.AccessToken}, 200, nil)
	// Unsuspending again changes nothing and needs no body.
	e.expect(req{method: "POST", path: base + "/unsuspend", token: adm.AccessToken}, 200, &d)
	if d.SuspendedAt != nil {
		t.Fatalf("second unsuspend answered %+v", d)
	}

	suspended := e.auditRows(org, "admin.organization_suspended")
	if len(suspended) != 2 || !strings.Contains(suspended[0], `"reason": "phishing pages, ticket 4411"`) ||
		!strings.Contains(suspended[1], `"was_suspended": true`) {
		t.Fatalf("suspension audit rows: %v", suspended)
	}
	lifted := e.auditRows(org, "admin.organization_unsuspended")
	if len(lifted) != 2 || !strings.Contains(lifted[0], `"reason": "cleaned up"`) || !strings.Contains(lifted[0], `"lifted_reason": "still phishing"`) {
		t.Fatalf("unsuspension audit rows: %v", lifted)
	}
	var actors []string
	if err := e.db.Owner.Select(&actors, `SELECT DISTINCT actor_user_id::text FROM audit_log WHERE org_id = $1 AND action LIKE 'admin.%'`, org); err != nil ||
		len(actors) != 1 || actors[0] != adm.UserID.String() {
		t.Fatalf("admin actions' actors %v (%v), want the admin", actors, err)
	}
	// The organization's owner sees them in its own log.
	var log struct {
		Data []struct {
			Action string `json:"action"`
		} `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/audit-log?limit=100", token: owner.AccessToken}, 200, &log)
	seen := map[string]int{}
	for _, x := range log.Data {
		seen[x.Action]++
	}
	if seen["admin.organization_suspended"] != 2 || seen["admin.organization_unsuspended"] != 2 {
		t.Fatalf("owner's audit log: %v", seen)
	}
}

// seedOrg inserts an organization with a subscription row (none when
// status is empty) as the superuser, one second after the previous one.
func (e *env) seedOrg(name string, at time.Time, planID *string, status string, suspended bool) string {
	e.t.Helper()
	id := uuid.NewString()
	var susp *time.Time
	if suspended {
		susp = &at
	}
	if _, err := e.db.Owner.Exec(`INSERT INTO organizations (id, name, created_at, suspended_at) VALUES ($1, $2, $3, $4)`, id, name, at, susp); err != nil {
		e.t.Fatal(err)
	}
	if status != "" {
		if _, err := e.db.Owner.Exec(`INSERT INTO subscriptions (org_id, plan_id, status) VALUES ($1, $2, $3)`, id, planID, status); err != nil {
			e.t.Fatal(err)
		}
	}
	return id
}

func ptr[T any](v T) *T { return &v }

// listOrgIDs pages through GET /admin/organizations with query q, limit
// per page, and returns the names in order.
func (e *env) listOrgNames(a platformAdmin, q url.Values, limit int) []string {
	e.t.Helper()
	var names []string
	cursor := ""
	for range 50 {
		v := url.Values{}
		for k, x := range q {
			v[k] = x
		}
		v.Set("limit", strconv.Itoa(limit))
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		var page struct {
			Data       []adminOrg `json:"data"`
			NextCursor string     `json:"next_cursor"`
		}
		e.expect(req{method: "GET", path: "/api/v1/admin/organizations?" + v.Encode(), token: a.AccessToken}, 200, &page)
		for _, o := range page.Data {
			names = append(names, o.Name)
		}
		if page.NextCursor == "" {
			return names
		}
		cursor = page.NextCursor
	}
	e.t.Fatal("paging does not end")
	return nil
}

// TestAdminOrgList: the search, plan and status filters return exactly
// the seeded organizations, newest first, across pages; the plan is the
// effective one (a canceled or unknown plan is the fallback).
func TestAdminOrgList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	adm := e.newPlatformAdmin("ops@list.test")
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	ids := map[string]string{}
	for i, s := range []struct {
		name, status string
		plan         *string
		suspended    bool
	}{
		{"Seed Active Pro", "active", ptr("pro"), false},
		{"Seed PastDue Business", "past_due", ptr("business"), false},
		{"Seed Canceled Pro", "canceled", ptr("pro"), false},
		{"Seed Free", "free", nil, false},
		{"Seed NoRow", "", nil, false},
		{"Seed Trial Business", "trialing", ptr("business"), true},
		{"Seed Unknown 100%", "active", ptr("enterprise"), false},
	} {
		ids[s.name] = e.seedOrg(s.name, t0.Add(time.Duration(i)*time.Second), s.plan, s.status, s.suspended)
	}
	seed := func(kv ...string) url.Values {
		v := url.Values{"q": {"seed"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, c := range []struct {
		name string
		q    url.Values
		want []string
	}{
		{"all seeded, newest first", seed(), []string{"Seed Unknown 100%", "Seed Trial Business", "Seed NoRow", "Seed Free", "Seed Canceled Pro", "Seed PastDue Business", "Seed Active Pro"}},
		{"business, every org", url.Values{"plan": {"business"}}, []string{"Seed Trial Business", "Seed PastDue Business"}},
		{"pro", seed("plan", "pro"), []string{"Seed Active Pro"}},
		{"the fallback plan", seed("plan", "free"), []string{"Seed Unknown 100%", "Seed NoRow", "Seed Free", "Seed Canceled Pro"}},
		{"past_due, every org", url.Values{"status": {"past_due"}}, []string{"Seed PastDue Business"}},
		{"free status", seed("status", "free"), []string{"Seed NoRow", "Seed Free"}},
		{"active on pro", seed("status", "active", "plan", "pro"), []string{"Seed Active Pro"}},
		{"suspended, every org", url.Values{"suspended": {"true"}}, []string{"Seed Trial Business"}},
		{"not suspended", seed("suspended", "false", "plan", "business"), []string{"Seed PastDue Business"}},
		{"substring, any case", url.Values{"q": {"pASTdue"}}, []string{"Seed PastDue Business"}},
		{"a literal %", url.Values{"q": {"100%"}}, []string{"Seed Unknown 100%"}},
		{"% matches no wildcard", url.Values{"q": {"d%o"}}, nil},
		{"exact id", url.Values{"q": {ids["Seed Canceled Pro"]}}, []string{"Seed Canceled Pro"}},
	} {
		for _, limit := range []int{1, 2, 100} {
			if got := e.listOrgNames(adm, c.q, limit); !slices.Equal(got, c.want) {
				t.Errorf("%s (limit %d): got %q, want %q", c.name, limit, got, c.want)
			}
		}
	}

	var page struct {
		Data []adminOrg `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/admin/organizations?q=Seed+Canceled", token: adm.AccessToken}, 200, &page)
	if len(page.Data) != 1 || page.Data[0].Plan.ID != "free" || page.Data[0].Plan.Name != "Free" || page.Data[0].Status != "canceled" {
		t.Fatalf("canceled org: %+v", page.Data)
	}
	e.expect(req{method: "GET", path: "/api/v1/admin/organizations?q=Seed+Trial", token: adm.AccessToken}, 200, &page)
	if len(page.Data) != 1 || page.Data[0].Plan.ID != "business" || page.Data[0].SuspendedAt == nil || page.Data[0].MemberCount != 0 {
		t.Fatalf("trialing org: %+v", page.Data)
	}

	for _, q := range []string{"status=paying", "plan=gold", "suspended=yes", "limit=0", "cursor=nope"} {
		e.problem(req{method: "GET", path: "/api/v1/admin/organizations?" + q, token: adm.AccessToken}, 400, "validation_failed")
	}

	// Each search is a platform row with its filters.
	var details []string
	if err := e.db.Owner.Select(&details, `SELECT details::text FROM audit_log WHERE org_id IS NULL AND action = 'admin.organizations_listed'
		AND actor_user_id = $1 AND details->>'plan' = 'business' AND details->>'q' = ''`, adm.UserID); err != nil || len(details) != 4 {
		t.Fatalf("listed rows for plan=business: %v (%v), want one per page (2 at limit 1, 1 at 2 and 100)", details, err)
	}
}

// TestAdminOrgDetail: the view shows members, subscription, usage against
// the plan and recent audit, and is audited in that organization.
func TestAdminOrgDetail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	adm := e.newPlatformAdmin("ops@detail.test")
	owner := e.signup("owner@detail.test", "Olive Owner", "Detailed")
	e.join(owner, "mia@detail.test", "member", 1)
	org := owner.OrganizationID
	e.expect(req{method: "POST", path: "/api/v1/resources", token: owner.AccessToken, body: map[string]any{"name": "first"}}, 201, nil)
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken,
		body: map[string]string{"email": "pending@detail.test", "role": "member"}}, 201, nil)
	end := time.Now().Add(20 * 24 * time.Hour).UTC().Truncate(time.Second)
	if _, err := e.db.Owner.Exec(`UPDATE subscriptions SET plan_id = 'business', status = 'active', billing_interval = 'year',
		current_period_end = $2, stripe_customer_id = 'cus_detail', stripe_subscription_id = 'sub_detail', quantity = 2 WHERE org_id = $1`, org, end); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Owner.Exec(`INSERT INTO usage_counters (org_id, metric, value) VALUES ($1, 'storage_bytes', 4096)
		ON CONFLICT (org_id, metric) DO UPDATE SET value = 4096`, org); err != nil {
		t.Fatal(err)
	}

	var d adminOrgDetail
	e.expect(req{method: "GET", path: "/api/v1/admin/organizations/" + org, token: adm.AccessToken}, 200, &d)
	if d.ID != org || d.Name != "Detailed" || d.Plan.ID != "business" || d.Plan.Name != "Business" || d.SuspendedAt != nil {
		t.Fatalf("detail: %+v", d)
	}
	s := d.Subscription
	if s.PlanID == nil || *s.PlanID != "business" || s.Status != "active" || s.Interval == nil || *s.Interval != "year" ||
		s.CurrentPeriodEnd == nil || !s.CurrentPeriodEnd.Equal(end) || s.StripeCustomerID == nil || *s.StripeCustomerID != "cus_detail" ||
		s.StripeSubscriptionID == nil || *s.StripeSubscriptionID != "sub_detail" || s.Quantity == nil || *s.Quantity != 2 {
		t.Fatalf("subscription: %+v", s)
	}
	if d.MemberCount != 2 || len(d.Members) != 2 || d.Members[0].Email != "owner@detail.test" || d.Members[0].Role != "owner" ||
		d.Members[0].Name != "Olive Owner" || d.Members[1].Email != "mia@detail.test" || d.Members[1].Role != "member" {
		t.Fatalf("members: %+v", d.Members)
	}
	usage := map[string][2]int64{}
	for _, u := range d.Usage {
		l := int64(-1)
		if u.Limit != nil {
			l = *u.Limit
		}
		usage[u.Metric] = [2]int64{u.Used, l}
	}
	want := map[string][2]int64{"seats": {3, 200}, "resources": {1, -1}, "storage_bytes": {4096, 107374182400}}
	if len(usage) != 3 || usage["seats"] != want["seats"] || usage["resources"] != want["resources"] || usage["storage_bytes"] != want["storage_bytes"] {
		t.Fatalf("usage %v, want %v", usage, want)
	}
	if len(d.RecentAudit) == 0 || d.RecentAudit[0].Action != "admin.organization_viewed" || d.RecentAudit[0].ActorUserID == nil ||
		*d.RecentAudit[0].ActorUserID != adm.UserID.String() || d.RecentAudit[0].OrganizationID == nil || *d.RecentAudit[0].OrganizationID != org {
		t.Fatalf("recent audit: %+v", d.RecentAudit)
	}
	for _, a := range d.RecentAudit {
		if a.OrganizationID == nil || *a.OrganizationID != org {
			t.Fatalf("recent audit holds another organization's entry: %+v", a)
		}
	}
	if rows := e.auditRows(org, "admin.organization_viewed"); len(rows) != 1 {
		t.Fatalf("viewed rows in the organization: %v", rows)
	}
	e.problem(req{method: "GET", path: "/api/v1/admin/organizations/" + uuid.NewString(), token: adm.AccessToken}, 404, "not_found")
	e.problem(req{method: "GET", path: "/api/v1/admin/organizations/not-an-id", token: adm.AccessToken}, 404, "not_found")
	// The organization's own members cannot reach it.
	e.problem(req{method: "GET", path: "/api/v1/admin/organizations/" + org, token: owner.AccessToken}, 403, "platform_admin_required")
}

// TestAdminAuditLog: the cross-tenant audit log filters by organization,
// actor, action (exact or prefix) and time, pages, and shows platform rows
// that no tenant's own log ever does.
func TestAdminAuditLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	adm := e.newPlatformAdmin("ops@audit.test")
	a := e.signup("owner@a-audit.test", "Ann", "Audit A")
	b := e.signup("owner@b-audit.test", "Bob", "Audit B")
	e.expect(req{method: "GET", path: "/api/v1/admin/organizations/" + a.OrganizationID, token: adm.AccessToken}, 200, nil)
	e.expect(req{method: "GET", path: "/api/v1/admin/organizations?q=audit", token: adm.AccessToken}, 200, nil)
	e.expect(req{method: "PATCH", path: "/api/v1/organizations/current", token: b.AccessToken, body: map[string]string{"name": "Audit B2"}}, 200, nil)

	list := func(q url.Values) []adminAudit {
		t.Helper()
		var out []adminAudit
		cursor := ""
		for {
			v := url.Values{"limit": {"3"}}
			for k, x := range q {
				v[k] = x
			}
			if cursor != "" {
				v.Set("cursor", cursor)
			}
			var page struct {
				Data       []adminAudit `json:"data"`
				NextCursor string       `json:"next_cursor"`
			}
			e.expect(req{method: "GET", path: "/api/v1/admin/audit-log?" + v.Encode(), token: adm.AccessToken}, 200, &page)
			out = append(out, page.Data...)
			if page.NextCursor == "" {
				return out
			}
			cursor = page.NextCursor
		}
	}
	ids := func(es []adminAudit) []string {
		out := make([]string, len(es))
		for i, x := range es {
			out[i] = x.ID
		}
		return out
	}
	want := func(where string, args ...any) []string {
		t.Helper()
		var out []string
		if err := e.db.Owner.Select(&out, `SELECT id::text FROM audit_log WHERE `+where+` ORDER BY created_at DESC, id DESC`, args...); err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(name string, q url.Values, where string, args ...any) []adminAudit {
		t.Helper()
		// Each page's read writes a platform row (admin.audit_log_read)
		// newer than every row, so it never shows on a later page of the
		// same read: the pages together are the rows as they were before.
		w := want(where, args...)
		got := list(q)
		if !slices.Equal(ids(got), w) {
			t.Errorf("%s: got %d entries %v, want %d %v", name, len(got), ids(got), len(w), w)
		}
		return got
	}

	all := check("everything", url.Values{}, "true")
	platform := 0
	for _, x := range all {
		if x.OrganizationID == nil {
			platform++
		}
	}
	if platform == 0 {
		t.Fatal("no platform rows in the admin's audit log")
	}
	check("organization A", url.Values{"organization_id": {a.OrganizationID}}, "org_id = $1", a.OrganizationID)
	check("organization B", url.Values{"organization_id": {b.OrganizationID}}, "org_id = $1", b.OrganizationID)
	check("the admin's actions", url.Values{"actor_user_id": {adm.UserID.String()}}, "actor_user_id = $1", adm.UserID)
	check("prefix admin.", url.Values{"action": {"admin."}}, "action LIKE 'admin.%'")
	exact := check("exact action", url.Values{"action": {"admin.organization_viewed"}}, "action = 'admin.organization_viewed'")
	if len(exact) != 1 || exact[0].OrganizationID == nil || *exact[0].OrganizationID != a.OrganizationID || exact[0].TargetID != a.OrganizationID {
		t.Fatalf("viewed entries: %+v", exact)
	}
	check("an action is not a prefix without its dot", url.Values{"action": {"admin"}}, "action = 'admin'")
	check("org A's user logins", url.Values{"organization_id": {a.OrganizationID}, "action": {"user.login"}}, "org_id = $1 AND action = 'user.login'", a.OrganizationID)
	mid := all[len(all)/2].CreatedAt
	check("until", url.Values{"until": {mid.Format(time.RFC3339Nano)}}, "created_at < $1", mid)
	check("since", url.Values{"since": {mid.Format(time.RFC3339Nano)}, "action": {"organization."}}, "created_at >= $1 AND action LIKE 'organization.%'", mid)

	for _, q := range []string{"organization_id=x", "actor_user_id=1", "since=yesterday", "until=2026-01-01",
		"since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "action=" + strings.Repeat("a", 257)} {
		e.problem(req{method: "GET", path: "/api/v1/admin/audit-log?" + q, token: adm.AccessToken}, 400, "validation_failed")
	}
	var reads int
	if err := e.db.Owner.Get(&reads, `SELECT count(*) FROM audit_log WHERE org_id IS NULL AND action = 'admin.audit_log_read'
		AND details->>'organization_id' = $1`, a.OrganizationID); err != nil || reads < 2 {
		t.Fatalf("audit_log_read rows with the filter: %d (%v)", reads, err)
	}

	// A tenant's own log: only its rows, never a platform row, whoever
	// asks with whatever filter the tenant route has.
	var own struct {
		Data []struct {
			ID     string `json:"id"`
			Action string `json:"action"`
		} `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/audit-log?limit=100", token: a.AccessToken}, 200, &own)
	var got []string
	for _, x := range own.Data {
		got = append(got, x.ID)
	}
	if w := want("org_id = $1", a.OrganizationID); !slices.Equal(got, w) {
		t.Fatalf("tenant A's log %v, want exactly its rows %v", got, w)
	}
	for _, x := range own.Data {
		if x.Action == "admin.organizations_listed" || x.Action == "admin.audit_log_read" {
			t.Fatalf("a platform row in a tenant's log: %+v", x)
		}
	}
}
