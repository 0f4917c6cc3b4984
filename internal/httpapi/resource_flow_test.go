package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/plan"
)

type resourceBody struct {
	ID                string         `json:"id"`
	Name              string         `json:"name"`
	Description       string         `json:"description"`
	Status            string         `json:"status"`
	Attributes        map[string]any `json:"attributes"`
	Version           int64          `json:"version"`
	CreatedByUserID   string         `json:"created_by_user_id"`
	CreatedByAPIKeyID string         `json:"created_by_api_key_id"`
	CreatedAt         time.Time      `json:"created_at"`
	UpdatedAt         time.Time      `json:"updated_at"`
}

type resourcePage struct {
	Data       []resourceBody `json:"data"`
	NextCursor string         `json:"next_cursor"`
}

func (e *env) createResource(tok string, body any) resourceBody {
	e.t.Helper()
	var r resourceBody
	w := e.expect(req{method: "POST", path: "/api/v1/resources", token: tok, body: body}, 201, &r)
	if loc := w.Header().Get("Location"); loc != "/api/v1/resources/"+r.ID {
		e.t.Fatalf("Location %q for %s", loc, r.ID)
	}
	if et := w.Header().Get("ETag"); et != fmt.Sprintf(`"%d"`, r.Version) {
		e.t.Fatalf("ETag %q for version %d", et, r.Version)
	}
	return r
}

// names pages through GET /resources?query with limit and returns the
// names in order.
func (e *env) resourceNames(tok, query string, limit int) []string {
	e.t.Helper()
	var names []string
	cursor := ""
	for i := 0; ; i++ {
		if i > 50 {
			e.t.Fatal("too many pages")
		}
		q := fmt.Sprintf("/api/v1/resources?limit=%d&%s", limit, query)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var pg resourcePage
		e.expect(req{method: "GET", path: q, token: tok}, 200, &pg)
		for _, r := range pg.Data {
			names = append(names, r.Name)
		}
		if pg.NextCursor == "" {
			return names
		}
		cursor = pg.NextCursor
	}
}

// TestResourceLifecycle: create, read with ETag, update with If-Match or a
// body version, the 428 and 412 answers, roles, soft delete, restore and
// purge, each audited.
func TestResourceLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("owner@example.com", "Owner", "Acme")
	member := e.join(owner, "member@example.com", "member", 1)
	var memberKey struct{ Key, ID string }
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/api-keys", token: owner.AccessToken,
		body: map[string]string{"name": "ci", "role": "member"}}, 201, &memberKey)

	r := e.createResource(member.AccessToken, map[string]any{"name": "  Pump 7 ", "description": "north wing", "status": "draft",
		"attributes": map[string]any{"serial": "P-7", "kw": 7.5}})
	if r.Name != "Pump 7" || r.Status != "draft" || r.Version != 1 || r.Attributes["serial"] != "P-7" || r.CreatedByUserID == "" {
		t.Fatalf("created %+v", r)
	}
	byKey := e.createResource(memberKey.Key, map[string]any{"name": "by key"})
	if byKey.CreatedByAPIKeyID != memberKey.ID || byKey.Status != "active" || len(byKey.Attributes) != 0 {
		t.Fatalf("created by key %+v", byKey)
	}
	path := "/api/v1/resources/" + r.ID

	// Bad bodies.
	for _, c := range []struct {
		body  any
		field string
	}{
		{map[string]any{"name": "x", "colour": "red"}, "colour"},
		{map[string]any{"name": ""}, "name"},
		{map[string]any{"name": strings.Repeat("n", 201)}, "name"},
		{map[string]any{"name": "x", "status": "deleted"}, "status"},
		{map[string]any{"name": "x", "attributes": []int{1}}, "attributes"},
		{map[string]any{"name": "x", "attributes": map[string]string{"k": strings.Repeat("v", 16<<10)}}, "attributes"},
		{map[string]any{"name": 7}, "name"},
	} {
		w := e.problem(req{method: "POST", path: "/api/v1/resources", token: member.AccessToken, body: c.body}, 400, "validation_failed")
		if !strings.Contains(w.Body.String(), `"field":"`+c.field+`"`) {
			t.Errorf("%v: %s", c.body, w.Body)
		}
	}

	// GET with ETag, and 304 for a current If-None-Match.
	var got resourceBody
	w := e.expect(req{method: "GET", path: path, token: member.AccessToken}, 200, &got)
	if got.ID != r.ID || w.Header().Get("ETag") != `"1"` {
		t.Fatalf("get %+v, ETag %q", got, w.Header().Get("ETag"))
	}
	if w := e.expect(req{method: "GET", path: path, token: member.AccessToken, header: map[string]string{"If-None-Match": `"1"`}}, 304, nil); w.Body.Len() != 0 {
		t.Fatalf("304 with a body %q", w.Body)
	}
	e.expect(req{method: "GET", path: path, token: member.AccessToken, header: map[string]string{"If-None-Match": `"0"`}}, 200, nil)

	// PATCH needs the version; a stale one is 412 naming the current one.
	e.problem(req{method: "PATCH", path: path, token: member.AccessToken, body: map[string]any{"name": "x"}}, 428, "precondition_required")
	var u resourceBody
	w = e.expect(req{method: "PATCH", path: path, token: member.AccessToken, header: map[string]string{"If-Match": `"1"`},
		body: map[string]any{"status": "active"}}, 200, &u)
	if u.Version != 2 || u.Status != "active" || u.Name != "Pump 7" || u.Description != "north wing" || u.Attributes["serial"] != "P-7" || w.Header().Get("ETag") != `"2"` {
		t.Fatalf("patched %+v", u)
	}
	w = e.problem(req{method: "PATCH", path: path, token: member.AccessToken, header: map[string]string{"If-Match": `"1"`},
		body: map[string]any{"name": "late"}}, 412, "version_conflict")
	if !strings.Contains(w.Body.String(), "version 2") {
		t.Fatalf("412 does not name the current version: %s", w.Body)
	}
	e.problem(req{method: "PATCH", path: path, token: member.AccessToken, body: map[string]any{"name": "late", "version": 1}}, 412, "version_conflict")
	e.problem(req{method: "PATCH", path: path, token: member.AccessToken, header: map[string]string{"If-Match": "2"},
		body: map[string]any{"version": 3}}, 400, "validation_failed")
	e.problem(req{method: "PATCH", path: path, token: member.AccessToken, header: map[string]string{"If-Match": "*"},
		body: map[string]any{"name": "x"}}, 400, "validation_failed")
	e.problem(req{method: "PATCH", path: path, token: member.AccessToken, header: map[string]string{"If-Match": "2"},
		body: map[string]any{"name": nil}}, 400, "validation_failed")
	// A bare If-Match works; null description clears it; attributes are replaced.
	u = resourceBody{}
	e.expect(req{method: "PATCH", path: path, token: member.AccessToken, header: map[string]string{"If-Match": "2"},
		body: map[string]any{"description": nil, "attributes": map[string]any{"kw": 11}}}, 200, &u)
	if u.Version != 3 || u.Description != "" || len(u.Attributes) != 1 || u.Attributes["kw"] != float64(11) {
		t.Fatalf("cleared %+v", u)
	}
	// The body's version works as well.
	e.expect(req{method: "PATCH", path: path, token: memberKey.Key, body: map[string]any{"name": "Pump 8", "version": 3}}, 200, &u)
	if u.Version != 4 || u.Name != "Pump 8" {
		t.Fatalf("renamed %+v", u)
	}

	// Members may not delete or restore; admins and owners may.
	e.problem(req{method: "DELETE", path: path, token: member.AccessToken}, 403, "forbidden")
	e.problem(req{method: "DELETE", path: path, token: memberKey.Key}, 403, "forbidden")
	e.problem(req{method: "DELETE", path: path, token: owner.AccessToken, header: map[string]string{"If-Match": `"3"`}}, 412, "version_conflict")
	e.expect(req{method: "DELETE", path: path, token: owner.AccessToken}, 204, nil)
	e.problem(req{method: "GET", path: path, token: owner.AccessToken}, 404, "not_found")
	e.problem(req{method: "PATCH", path: path, token: owner.AccessToken, header: map[string]string{"If-Match": "4"}, body: map[string]any{"name": "x"}}, 404, "not_found")
	e.problem(req{method: "DELETE", path: path, token: owner.AccessToken}, 404, "not_found")
	if names := e.resourceNames(owner.AccessToken, "", 10); !slices.Equal(names, []string{"by key"}) {
		t.Fatalf("list after delete: %q", names)
	}
	e.problem(req{method: "POST", path: path + "/restore", token: member.AccessToken}, 403, "forbidden")
	e.expect(req{method: "POST", path: path + "/restore", token: owner.AccessToken}, 200, &u)
	if u.ID != r.ID || u.Name != "Pump 8" {
		t.Fatalf("restored %+v", u)
	}
	e.problem(req{method: "POST", path: path + "/restore", token: owner.AccessToken}, 409, "not_deleted")
	e.expect(req{method: "GET", path: path, token: member.AccessToken}, 200, nil)
	e.problem(req{method: "GET", path: "/api/v1/resources/not-a-uuid", token: member.AccessToken}, 404, "not_found")

	// Deleted for more than 30 days: restore is 404 and the purge job deletes it.
	e.expect(req{method: "DELETE", path: path, token: owner.AccessToken}, 204, nil)
	e.clock.Advance(30*24*time.Hour + time.Minute)
	owner = e.login("owner@example.com", password) // the old access token expired with the clock
	e.problem(req{method: "POST", path: path + "/restore", token: owner.AccessToken}, 404, "not_found")
	res, err := e.resources.PurgeDeleted(context.Background())
	if err != nil || res.Purged != 1 {
		t.Fatalf("purge %+v %v", res, err)
	}
	var left int
	if err := e.db.Owner.Get(&left, `SELECT count(*) FROM resources WHERE id = $1`, r.ID); err != nil || left != 0 {
		t.Fatalf("purged row still there: %d %v", left, err)
	}

	// Every write is in the audit log.
	var log struct {
		Data []struct {
			Action   string `json:"action"`
			TargetID string `json:"target_id"`
		} `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/organizations/current/audit-log?limit=100", token: owner.AccessToken}, 200, &log)
	count := map[string]int{}
	for _, a := range log.Data {
		if a.TargetID == r.ID {
			count[a.Action]++
		}
	}
	want := map[string]int{"resource.created": 1, "resource.updated": 3, "resource.deleted": 2, "resource.restored": 1, "resource.purged": 1}
	for action, n := range want {
		if count[action] != n {
			t.Errorf("%d %s entries, want %d (%v)", count[action], action, n, count)
		}
	}
}

// TestResourceListing: every sort pages through all rows, q and status
// filter, a cursor is bound to its sort, and bad parameters are 400.
func TestResourceListing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("owner@example.com", "Owner", "Acme")
	other := e.signup("other@example.com", "Other", "Other")
	e.createResource(other.AccessToken, map[string]any{"name": "Other's pump"})
	var created []resourceBody
	for i := range 23 {
		e.clock.Advance(time.Duration(i%2) * time.Second) // ties in created_at
		created = append(created, e.createResource(owner.AccessToken, map[string]any{
			"name": fmt.Sprintf("%s %02d", []string{"Pump", "valve", "Pipe_joint"}[i%3], (i*7)%23), "status": []string{"draft", "active", "archived"}[i%3]}))
	}
	e.clock.Advance(time.Second)
	var touched resourceBody
	e.expect(req{method: "PATCH", path: "/api/v1/resources/" + created[0].ID, token: owner.AccessToken, header: map[string]string{"If-Match": "1"},
		body: map[string]any{"description": "touched"}}, 200, &touched)

	newest := e.resourceNames(owner.AccessToken, "", 100)
	if len(newest) != 23 {
		t.Fatalf("%d rows", len(newest))
	}
	for _, sort := range []string{"created_at", "-created_at", "name", "-name", "updated_at", "-updated_at"} {
		all := e.resourceNames(owner.AccessToken, "sort="+sort, 100)
		for _, limit := range []int{1, 4, 10} {
			if got := e.resourceNames(owner.AccessToken, "sort="+sort, limit); !slices.Equal(got, all) {
				t.Errorf("sort %s limit %d:\n got %q\nwant %q", sort, limit, got, all)
			}
		}
		switch sort {
		case "name":
			if !slices.IsSorted(all) {
				t.Errorf("by name: %q", all)
			}
		case "-updated_at":
			if all[0] != touched.Name {
				t.Errorf("-updated_at starts with %q, want the touched %q", all[0], touched.Name)
			}
		case "-created_at":
			if !slices.Equal(all, newest) {
				t.Errorf("-created_at is not the default order")
			}
		}
	}
	if got := e.resourceNames(owner.AccessToken, "status=archived&sort=name", 3); len(got) != 7 || !slices.IsSorted(got) || !strings.HasPrefix(got[0], "Pipe_joint") {
		t.Errorf("archived: %q", got)
	}
	if got := e.resourceNames(owner.AccessToken, "q=PUMP&sort=name", 2); len(got) != 8 || got[0] != "Pump 00" {
		t.Errorf("q=PUMP: %q", got)
	}
	if got := e.resourceNames(owner.AccessToken, "q="+url.QueryEscape("e_j"), 5); len(got) != 7 {
		t.Errorf("q=e_j: %q", got)
	}
	if got := e.resourceNames(owner.AccessToken, "q="+url.QueryEscape("p_m"), 5); len(got) != 0 {
		t.Errorf("q=p_m matched %q: _ must match only itself", got)
	}

	var pg resourcePage
	e.expect(req{method: "GET", path: "/api/v1/resources?limit=2&sort=name", token: owner.AccessToken}, 200, &pg)
	w := e.problem(req{method: "GET", path: "/api/v1/resources?limit=2&sort=-name&cursor=" + url.QueryEscape(pg.NextCursor), token: owner.AccessToken}, 400, "validation_failed")
	if !strings.Contains(w.Body.String(), `"field":"cursor"`) {
		t.Fatalf("cursor of another sort: %s", w.Body)
	}
	e.problem(req{method: "GET", path: "/api/v1/resources?cursor=" + url.QueryEscape(pg.NextCursor), token: owner.AccessToken}, 400, "validation_failed")
	for _, q := range []string{"sort=id", "sort=--name", "status=gone", "limit=0", "limit=101", "cursor=junk", "q=" + strings.Repeat("x", 201), "q=%FF", "q=%00"} {
		e.problem(req{method: "GET", path: "/api/v1/resources?" + q, token: owner.AccessToken}, 400, "validation_failed")
	}
	e.problem(req{method: "GET", path: "/api/v1/resources", token: ""}, 401, "unauthenticated")
}

// TestResourcePlanLimit is the acceptance test: 50 concurrent creates
// against a limit of 10 leave exactly 10 resources, and the other 40 are 402
// plan_limit_reached with the limit, the usage and the plan.
func TestResourcePlanLimit(t *testing.T) {
	t.Parallel()
	plans, err := plan.Parse([]byte(`default: small
fallback: small
plans:
  - id: small
    name: Small
    limits: {seats: 5, resources: 10, storage_bytes: 1000}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{plans: plans})
	owner := e.signup("owner@example.com", "Owner", "Acme")
	codes := make([]int, 50)
	bodies := make([]string, 50)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := e.do(req{method: "POST", path: "/api/v1/resources", token: owner.AccessToken, body: map[string]any{"name": fmt.Sprint("r", i)}})
			codes[i], bodies[i] = w.Code, w.Body.String()
		}()
	}
	wg.Wait()
	n := map[int]int{}
	for i, c := range codes {
		n[c]++
		if c == http.StatusPaymentRequired {
			var p struct {
				Code, Metric, Plan string
				Limit, Usage       int64
			}
			if err := json.Unmarshal([]byte(bodies[i]), &p); err != nil || p.Code != "plan_limit_reached" || p.Metric != "resources" ||
				p.Limit != 10 || p.Usage != 10 || p.Plan != "small" {
				t.Errorf("402 body %s", bodies[i])
			}
		}
	}
	if n[201] != 10 || n[402] != 40 {
		t.Fatalf("statuses %v, want 10 × 201 and 40 × 402", n)
	}
	var rows int
	if err := e.db.Owner.Get(&rows, `SELECT count(*) FROM resources`); err != nil || rows != 10 {
		t.Fatalf("%d resources (%v), want 10", rows, err)
	}
	// Deleting one makes room for one.
	var pg resourcePage
	e.expect(req{method: "GET", path: "/api/v1/resources?limit=1", token: owner.AccessToken}, 200, &pg)
	e.expect(req{method: "DELETE", path: "/api/v1/resources/" + pg.Data[0].ID, token: owner.AccessToken}, 204, nil)
	e.createResource(owner.AccessToken, map[string]any{"name": "room again"})
	e.problem(req{method: "POST", path: "/api/v1/resources/" + pg.Data[0].ID + "/restore", token: owner.AccessToken}, 402, "plan_limit_reached")
}
