package resource_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/platform/clock/clocktest"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/resource"
	"github.com/keelhq/keel/internal/resource/resourcedb"
	"github.com/keelhq/keel/internal/tenant"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// fixture is two organizations (A with an owner, an admin and a member; B
// with an owner), written as the owner role, and a service on the app role
// (under RLS) with a driven clock and a resources limit.
type fixture struct {
	db                   *postgrestest.DB
	svc                  *resource.Service
	clock                *clocktest.Fake
	a, b                 uuid.UUID
	owner, admin, member *tenant.Principal
	bOwner               *tenant.Principal
}

var meta = audit.Meta{IP: "192.0.2.1", UserAgent: "test"}

func newFixture(t *testing.T, limit int64) *fixture {
	t.Helper()
	db := postgrestest.New(t)
	f := &fixture{db: db, a: uuid.New(), b: uuid.New(), clock: clocktest.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))}
	ids := [4]uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO organizations (id, name) VALUES ($1, 'A'), ($2, 'B')`, []any{f.a, f.b}},
		{`INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'o@x.test', 'O', 'x'), ($2, 'a@x.test', 'A', 'x'),
			($3, 'm@x.test', 'M', 'x'), ($4, 'b@x.test', 'B', 'x')`, []any{ids[0], ids[1], ids[2], ids[3]}},
		{`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'admin'), ($1, $4, 'member'), ($5, $6, 'owner')`,
			[]any{f.a, ids[0], ids[1], ids[2], f.b, ids[3]}},
	} {
		if _, err := db.Owner.Exec(q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	f.owner = &tenant.Principal{UserID: ids[0], OrgID: f.a, Role: "owner"}
	f.admin = &tenant.Principal{UserID: ids[1], OrgID: f.a, Role: "admin"}
	f.member = &tenant.Principal{UserID: ids[2], OrgID: f.a, Role: "member"}
	f.bOwner = &tenant.Principal{UserID: ids[3], OrgID: f.b, Role: "owner"}
	p := plan.Plan{ID: "tiny", Name: "Tiny", Limits: plan.Limits{Resources: limit, StorageBytes: plan.Unlimited, Seats: plan.Unlimited, APIRequestsPerMinute: plan.Unlimited}}
	f.svc = &resource.Service{DB: db.App, Store: resourcedb.Store{}, Now: f.clock.Now,
		Limits: &plan.Limiter{Plans: plan.Fixed{Plan: p}, Store: plandb.Store{}}}
	return f
}

func (f *fixture) create(t *testing.T, p *tenant.Principal, in resource.Input) *resource.Resource {
	t.Helper()
	r, err := f.svc.Create(context.Background(), p, in, meta)
	if err != nil {
		t.Fatalf("create %q: %v", in.Name, err)
	}
	return r
}

// code returns err's apperr code, or its text.
func code(err error) string {
	if e, ok := apperr.As(err); ok {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

func (f *fixture) audits(t *testing.T, org uuid.UUID, action string) int {
	t.Helper()
	var n int
	if err := f.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = $2`, org, action); err != nil {
		t.Fatal(err)
	}
	return n
}

func str(s string) *string { return &s }

func TestCreateValidatesAndAudits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	ctx := context.Background()
	r := f.create(t, f.member, resource.Input{Name: "  Pump 7  ", Attributes: json.RawMessage(`{ "b": 1, "a": [true, null, "x"] }`)})
	if r.Name != "Pump 7" || r.Status != resource.StatusActive || r.Version != 1 || r.Description != "" || r.DeletedAt != nil {
		t.Fatalf("created %+v", r)
	}
	if r.CreatedByUserID == nil || *r.CreatedByUserID != f.member.UserID || r.CreatedByAPIKeyID != nil {
		t.Fatalf("creator %v %v", r.CreatedByUserID, r.CreatedByAPIKeyID)
	}
	if !r.CreatedAt.Equal(f.clock.Now()) || !r.UpdatedAt.Equal(r.CreatedAt) {
		t.Fatalf("times %v %v, want the service clock's %v", r.CreatedAt, r.UpdatedAt, f.clock.Now())
	}
	var attrs map[string]any
	if err := json.Unmarshal(r.Attributes, &attrs); err != nil || attrs["b"] != float64(1) {
		t.Fatalf("attributes %s %v", r.Attributes, err)
	}
	got, err := f.svc.Get(ctx, f.member, r.ID)
	if err != nil || got.Name != "Pump 7" || got.Version != 1 {
		t.Fatalf("get %+v %v", got, err)
	}
	if n := f.audits(t, f.a, "resource.created"); n != 1 {
		t.Fatalf("%d resource.created entries", n)
	}
	// An API key is recorded as the creator.
	key := &tenant.Principal{APIKeyID: uuid.New(), OrgID: f.a, Role: "member"}
	if r := f.create(t, key, resource.Input{Name: "by key"}); r.CreatedByAPIKeyID == nil || *r.CreatedByAPIKeyID != key.APIKeyID || r.CreatedByUserID != nil {
		t.Fatalf("key creator %v %v", r.CreatedByUserID, r.CreatedByAPIKeyID)
	}

	big := `{"k":"` + strings.Repeat("x", resource.MaxAttributes) + `"}`
	for _, c := range []struct {
		in    resource.Input
		field string
	}{
		{resource.Input{Name: "   "}, "name"},
		{resource.Input{Name: strings.Repeat("é", resource.MaxName+1)}, "name"},
		{resource.Input{Name: "two\nlines"}, "name"},
		{resource.Input{Name: "x", Description: strings.Repeat("d", resource.MaxDescription+1)}, "description"},
		{resource.Input{Name: "x", Description: "nul\x00"}, "description"},
		{resource.Input{Name: "x", Status: "deleted"}, "status"},
		{resource.Input{Name: "x", Attributes: json.RawMessage(`[1]`)}, "attributes"},
		{resource.Input{Name: "x", Attributes: json.RawMessage(`null`)}, "attributes"},
		{resource.Input{Name: "x", Attributes: json.RawMessage(big)}, "attributes"},
		{resource.Input{Name: "x", Attributes: json.RawMessage(`{"a":"\u0000"}`)}, "attributes"},
		{resource.Input{Name: "x", Attributes: json.RawMessage(`{"\u0000":1}`)}, "attributes"},
		{resource.Input{Name: "x", Attributes: json.RawMessage(`{"n":1e999999}`)}, "attributes"},
		{resource.Input{Name: "x", Attributes: json.RawMessage(`{"n":[1e-20000]}`)}, "attributes"},
		{resource.Input{Name: "x", Attributes: json.RawMessage(`{"n":{"m":0e-20000}}`)}, "attributes"},
	} {
		_, err := f.svc.Create(ctx, f.member, c.in, meta)
		e, ok := apperr.As(err)
		if !ok || e.Code != "validation_failed" || len(e.Fields) != 1 || e.Fields[0].Field != c.field {
			t.Errorf("create %.40q: %v, want validation_failed on %s", c.in.Name+c.in.Description+string(c.in.Attributes), err, c.field)
		}
	}
	// 16 KiB of compact JSON is accepted, whatever the whitespace sent.
	f.create(t, f.member, resource.Input{Name: "small numbers", Attributes: json.RawMessage(`{"zero": 0.000e-999, "tiny": 1e-300, "neg": -0, "big": 1.5e308}`)})
	exact := `{"k":"` + strings.Repeat("x", resource.MaxAttributes-8) + `"}`
	f.create(t, f.member, resource.Input{Name: "exact", Attributes: json.RawMessage(strings.Replace(exact, ":", " :  ", 1))})
	if n := f.audits(t, f.a, "resource.created"); n != 4 {
		t.Fatalf("%d resource.created entries after refusals", n)
	}
}

func TestUpdateNeedsCurrentVersion(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	ctx := context.Background()
	r := f.create(t, f.member, resource.Input{Name: "valve", Description: "old", Status: "draft", Attributes: json.RawMessage(`{"a":1}`)})
	f.clock.Advance(time.Minute)

	if _, err := f.svc.Update(ctx, f.member, r.ID, 0, resource.Patch{Name: str("x")}, meta); code(err) != "precondition_required" || apperr.KindOf(err) != apperr.PreconditionRequired {
		t.Fatalf("no version: %v", err)
	}
	// Only the fields sent change.
	u, err := f.svc.Update(ctx, f.member, r.ID, 1, resource.Patch{Name: str(" valve 2 ")}, meta)
	if err != nil || u.Name != "valve 2" || u.Description != "old" || u.Status != "draft" || string(u.Attributes) != `{"a": 1}` || u.Version != 2 {
		t.Fatalf("update: %+v %s %v", u, u.Attributes, err)
	}
	if !u.UpdatedAt.Equal(f.clock.Now()) || !u.CreatedAt.Equal(r.CreatedAt) {
		t.Fatalf("times %v %v", u.CreatedAt, u.UpdatedAt)
	}
	// A stale version is a conflict naming the current one, and changes nothing.
	_, err = f.svc.Update(ctx, f.member, r.ID, 1, resource.Patch{Status: str("archived")}, meta)
	if e, ok := apperr.As(err); !ok || e.Code != "version_conflict" || e.Kind != apperr.PreconditionFailed || !strings.Contains(e.Message, "version 2") {
		t.Fatalf("stale: %v", err)
	}
	// An empty description clears it; attributes are replaced whole.
	u, err = f.svc.Update(ctx, f.member, r.ID, 2, resource.Patch{Description: str(""), Attributes: json.RawMessage(`{"b":2}`)}, meta)
	if err != nil || u.Description != "" || string(u.Attributes) != `{"b": 2}` || u.Version != 3 || u.Name != "valve 2" {
		t.Fatalf("clear: %+v %v", u, err)
	}
	// A patch that changes nothing keeps the version and writes no audit.
	u, err = f.svc.Update(ctx, f.member, r.ID, 3, resource.Patch{Name: str("valve 2"), Attributes: json.RawMessage(`{ "b" : 2 }`)}, meta)
	if err != nil || u.Version != 3 {
		t.Fatalf("no-op: %+v %v", u, err)
	}
	if n := f.audits(t, f.a, "resource.updated"); n != 2 {
		t.Fatalf("%d resource.updated entries, want 2", n)
	}
	if _, err := f.svc.Update(ctx, f.member, r.ID, 3, resource.Patch{Status: str("gone")}, meta); code(err) != "validation_failed" {
		t.Fatalf("bad status: %v", err)
	}
	if _, err := f.svc.Update(ctx, f.member, uuid.New(), 1, resource.Patch{Name: str("x")}, meta); code(err) != "not_found" {
		t.Fatalf("unknown id: %v", err)
	}
}

// Two writers holding version 1: one wins, the other gets version_conflict.
func TestConcurrentUpdatesSerialize(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	r := f.create(t, f.member, resource.Input{Name: "r"})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.svc.Update(context.Background(), f.member, r.ID, 1, resource.Patch{Name: str(fmt.Sprint("n", i))}, meta)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch code(err) {
		case "":
			ok++
		case "version_conflict":
		default:
			t.Fatal(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d updates of version 1 succeeded", ok)
	}
}

func TestDeleteRestoreRolesAndWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	ctx := context.Background()
	r := f.create(t, f.member, resource.Input{Name: "r"})

	if err := f.svc.Delete(ctx, f.member, r.ID, 0, meta); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("member delete: %v", err)
	}
	if err := f.svc.Delete(ctx, f.admin, r.ID, 7, meta); code(err) != "version_conflict" {
		t.Fatalf("delete at a stale version: %v", err)
	}
	if err := f.svc.Delete(ctx, f.admin, r.ID, 1, meta); err != nil {
		t.Fatal(err)
	}
	// Deleted: not found for reads, writes and a second delete; absent from lists.
	if _, err := f.svc.Get(ctx, f.owner, r.ID); code(err) != "not_found" {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := f.svc.Update(ctx, f.owner, r.ID, 1, resource.Patch{Name: str("x")}, meta); code(err) != "not_found" {
		t.Fatalf("patch deleted: %v", err)
	}
	if err := f.svc.Delete(ctx, f.owner, r.ID, 0, meta); code(err) != "not_found" {
		t.Fatalf("delete twice: %v", err)
	}
	if rows, _, err := f.svc.List(ctx, f.owner, tenant.Page{Limit: 10}, resource.Filter{}); err != nil || len(rows) != 0 {
		t.Fatalf("list shows %d (%v)", len(rows), err)
	}
	if _, err := f.svc.Restore(ctx, f.member, r.ID, meta); !errors.Is(err, tenant.ErrForbidden) {
		t.Fatalf("member restore: %v", err)
	}
	f.clock.Advance(resource.RestoreWindow - time.Second)
	back, err := f.svc.Restore(ctx, f.owner, r.ID, meta)
	if err != nil || back.DeletedAt != nil || back.Name != "r" {
		t.Fatalf("restore: %+v %v", back, err)
	}
	if _, err := f.svc.Restore(ctx, f.owner, r.ID, meta); code(err) != "not_deleted" {
		t.Fatalf("restore a live one: %v", err)
	}
	if _, err := f.svc.Get(ctx, f.member, r.ID); err != nil {
		t.Fatalf("get restored: %v", err)
	}
	// Past the window a deleted resource is gone for restore too.
	if err := f.svc.Delete(ctx, f.owner, r.ID, 0, meta); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(resource.RestoreWindow)
	if _, err := f.svc.Restore(ctx, f.owner, r.ID, meta); code(err) != "not_found" {
		t.Fatalf("restore after the window: %v", err)
	}
	for action, want := range map[string]int{"resource.deleted": 2, "resource.restored": 1} {
		if n := f.audits(t, f.a, action); n != want {
			t.Errorf("%d %s entries, want %d", n, action, want)
		}
	}
}

func TestPlanLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	ctx := context.Background()
	var rs []*resource.Resource
	for i := range 3 {
		rs = append(rs, f.create(t, f.member, resource.Input{Name: fmt.Sprint("r", i)}))
	}
	_, err := f.svc.Create(ctx, f.member, resource.Input{Name: "one too many"}, meta)
	e, ok := apperr.As(err)
	if !ok || e.Code != "plan_limit_reached" || e.Limit == nil || e.Limit.Limit != 3 || e.Limit.Usage != 3 || e.Limit.Plan != "tiny" {
		t.Fatalf("over the limit: %v", err)
	}
	// Another organization has its own count.
	f.create(t, f.bOwner, resource.Input{Name: "b"})
	// A delete frees a place; a restore needs one.
	if err := f.svc.Delete(ctx, f.owner, rs[0].ID, 0, meta); err != nil {
		t.Fatal(err)
	}
	f.create(t, f.member, resource.Input{Name: "replacement"})
	if _, err := f.svc.Restore(ctx, f.owner, rs[0].ID, meta); code(err) != "plan_limit_reached" {
		t.Fatalf("restore into a full plan: %v", err)
	}
	if err := f.svc.Delete(ctx, f.owner, rs[1].ID, 0, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Restore(ctx, f.owner, rs[0].ID, meta); err != nil {
		t.Fatalf("restore with room: %v", err)
	}
	var used int64
	if err := f.db.Owner.Get(&used, postgrestest.UsageSQL, f.a, "resources"); err != nil || used != 3 {
		t.Fatalf("usage %d %v, want 3", used, err)
	}
}

// listAll pages through a list with limit and returns the names in order.
func listAll(t *testing.T, f *fixture, p *tenant.Principal, filter resource.Filter, limit int) []string {
	t.Helper()
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("too many pages")
		}
		rows, next, err := f.svc.List(context.Background(), p, tenant.Page{Limit: limit, Cursor: cursor}, filter)
		if err != nil {
			t.Fatalf("list %+v: %v", filter, err)
		}
		if len(rows) > limit || (next != "" && len(rows) != limit) {
			t.Fatalf("page of %d rows with next %q", len(rows), next)
		}
		for _, r := range rows {
			names = append(names, r.Name)
		}
		if next == "" {
			return names
		}
		cursor = next
	}
}

func TestListSortsSearchesFiltersAndPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	ctx := context.Background()
	type rec struct {
		name, status     string
		created, updated time.Time
		id               uuid.UUID
	}
	var all []rec
	statuses := []string{"draft", "active", "archived"}
	// Names with case, accents, LIKE wildcards and ties; times with ties.
	names := []string{"alpha", "Beta", "beta", "gamma_1", "gamma%2", "Gamma", "delta", "épsilon", "zeta", "eta",
		"theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "alpha", "100% cotton", "a_b", "ab"}
	for i, n := range names {
		if i%3 == 0 {
			f.clock.Advance(time.Second) // every three rows share a created_at
		}
		r := f.create(t, f.member, resource.Input{Name: n, Status: statuses[i%3]})
		all = append(all, rec{name: n, status: r.Status, created: r.CreatedAt, updated: r.UpdatedAt, id: r.ID})
	}
	// Touch some so updated_at differs from created_at order.
	for i := len(all) - 1; i >= 0; i -= 4 {
		f.clock.Advance(time.Second)
		u, err := f.svc.Update(ctx, f.member, all[i].id, 1, resource.Patch{Description: str("touched")}, meta)
		if err != nil {
			t.Fatal(err)
		}
		all[i].updated = u.UpdatedAt
	}
	// B's resources never show up in A's lists.
	f.create(t, f.bOwner, resource.Input{Name: "alpha from B"})

	expect := func(s tenant.Sort, keep func(rec) bool) []string {
		rows := slices.Clone(all)
		sort.SliceStable(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if s.Desc {
				a, b = b, a
			}
			var c int
			switch s.Field {
			case "name":
				c = strings.Compare(a.name, b.name) // byte order, as COLLATE "C"
			case "updated_at":
				c = a.updated.Compare(b.updated)
			default:
				c = a.created.Compare(b.created)
			}
			if c == 0 {
				return strings.Compare(a.id.String(), b.id.String()) < 0
			}
			return c < 0
		})
		var out []string
		for _, r := range rows {
			if keep == nil || keep(r) {
				out = append(out, r.name)
			}
		}
		return out
	}
	for _, field := range resource.SortFields {
		for _, desc := range []bool{false, true} {
			s := tenant.Sort{Field: field, Desc: desc}
			for _, limit := range []int{1, 5, 7, 100} {
				if got, want := listAll(t, f, f.member, resource.Filter{Sort: s}, limit), expect(s, nil); !slices.Equal(got, want) {
					t.Errorf("sort %s limit %d:\n got %q\nwant %q", s, limit, got, want)
				}
			}
			for _, st := range statuses {
				got := listAll(t, f, f.member, resource.Filter{Sort: s, Status: st}, 4)
				if want := expect(s, func(r rec) bool { return r.status == st }); !slices.Equal(got, want) {
					t.Errorf("sort %s status %s:\n got %q\nwant %q", s, st, got, want)
				}
			}
		}
	}
	// The default order is newest first.
	if got, want := listAll(t, f, f.member, resource.Filter{}, 10), expect(resource.DefaultSort, nil); !slices.Equal(got, want) {
		t.Errorf("default order:\n got %q\nwant %q", got, want)
	}
	// q: case-insensitive substring; % and _ match only themselves.
	byName := tenant.Sort{Field: "name"}
	for q, want := range map[string][]string{
		"GAMMA":   {"Gamma", "gamma%2", "gamma_1"},
		"a_":      {"gamma_1", "a_b"}, // not "alpha"...
		"%":       {"100% cotton", "gamma%2"},
		"ÉPS":     {"épsilon"},
		"alpha":   {"alpha", "alpha"},
		"nothing": nil,
	} {
		got := listAll(t, f, f.member, resource.Filter{Sort: byName, Q: q}, 2)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("q=%q: got %q, want %q", q, got, want)
		}
	}
	if got := listAll(t, f, f.member, resource.Filter{Sort: byName, Q: "eta", Status: "draft"}, 2); !slices.Equal(got, expect(byName, func(r rec) bool {
		return strings.Contains(strings.ToLower(r.name), "eta") && r.status == "draft"
	})) {
		t.Errorf("q and status: %q", got)
	}
	// A search pages in every sort and direction, as the list does: its
	// page's IDs come from the sort's index and its rows are read after.
	for _, field := range resource.SortFields {
		for _, desc := range []bool{false, true} {
			s := tenant.Sort{Field: field, Desc: desc}
			has := func(r rec) bool { return strings.Contains(strings.ToLower(r.name), "a") }
			for _, limit := range []int{1, 3} {
				if got, want := listAll(t, f, f.member, resource.Filter{Sort: s, Q: "A"}, limit), expect(s, has); !slices.Equal(got, want) {
					t.Errorf("q=A sort %s limit %d:\n got %q\nwant %q", s, limit, got, want)
				}
			}
		}
	}

	// A cursor continues only its own sort.
	_, next, err := f.svc.List(ctx, f.member, tenant.Page{Limit: 2}, resource.Filter{Sort: byName})
	if err != nil || next == "" {
		t.Fatal(err)
	}
	for _, other := range []tenant.Sort{{Field: "name", Desc: true}, {Field: "created_at"}, resource.DefaultSort} {
		_, _, err := f.svc.List(ctx, f.member, tenant.Page{Limit: 2, Cursor: next}, resource.Filter{Sort: other})
		if e, ok := apperr.As(err); !ok || e.Code != "validation_failed" || e.Fields[0].Field != "cursor" {
			t.Errorf("name cursor with sort %s: %v", other, err)
		}
	}
	for _, bad := range []string{"x", "eyJvIjoibmFtZSJ9", tenant.EncodeCursor(time.Now(), uuid.New())} {
		if _, _, err := f.svc.List(ctx, f.member, tenant.Page{Limit: 2, Cursor: bad}, resource.Filter{}); code(err) != "validation_failed" {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
	for _, bad := range []resource.Filter{{Sort: tenant.Sort{Field: "id"}}, {Status: "deleted"}, {Q: strings.Repeat("q", resource.MaxQuery+1)}} {
		if _, _, err := f.svc.List(ctx, f.member, tenant.Page{Limit: 2}, bad); code(err) != "validation_failed" {
			t.Errorf("filter %+v: %v", bad, err)
		}
	}
}

// Rows inserted while a client pages (newest first, or by name) never make
// it see a row twice or miss one that existed when it started.
func TestPagingUnderConcurrentInserts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	ctx := context.Background()
	// The real clock: concurrent inserts get distinct, growing times.
	f.svc.Now = nil
	before := map[uuid.UUID]bool{}
	for i := range 60 {
		r := f.create(t, f.member, resource.Input{Name: fmt.Sprintf("base %03d", i)})
		before[r.ID] = true
	}
	for _, s := range []tenant.Sort{resource.DefaultSort, {Field: "name"}, {Field: "created_at"}} {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					// Names land before, among and after the base rows.
					name := []string{"aaa", "base 030x", "zzz"}[i%3] + fmt.Sprint(" ", s, w, i)
					if _, err := f.svc.Create(ctx, f.member, resource.Input{Name: name}, meta); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		seen := map[uuid.UUID]bool{}
		cursor := ""
		for {
			rows, next, err := f.svc.List(ctx, f.member, tenant.Page{Limit: 7, Cursor: cursor}, resource.Filter{Sort: s})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if seen[r.ID] {
					t.Fatalf("sort %s: %s (%s) seen twice", s, r.ID, r.Name)
				}
				seen[r.ID] = true
			}
			if next == "" {
				break
			}
			cursor = next
		}
		close(stop)
		wg.Wait()
		for id := range before {
			if !seen[id] {
				t.Fatalf("sort %s: base row %s skipped", s, id)
			}
		}
	}
}

// recorder is a FileRemover that notes what it was asked to remove, and
// can fail.
type recorder struct {
	mu   sync.Mutex
	got  map[uuid.UUID][]uuid.UUID
	fail bool
}

func (r *recorder) RemoveForResources(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, ids []uuid.UUID) error {
	// The hook runs in the purge's tenant transaction, the rows still there.
	var n int
	if err := tx.GetContext(ctx, &n, `SELECT count(*) FROM resources WHERE org_id = $1 AND id = ANY($2)`, orgID, ids); err != nil {
		return err
	}
	if n != len(ids) {
		return fmt.Errorf("hook sees %d of %d rows", n, len(ids))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("storage down")
	}
	r.got[orgID] = append(r.got[orgID], ids...)
	return nil
}

func TestPurgeDeleted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, plan.Unlimited)
	ctx := context.Background()
	files := &recorder{got: map[uuid.UUID][]uuid.UUID{}, fail: true}
	f.svc.Files, f.svc.PurgeBatch = files, 2
	var old []uuid.UUID
	for i := range 5 {
		r := f.create(t, f.member, resource.Input{Name: fmt.Sprint("old ", i)})
		if err := f.svc.Delete(ctx, f.owner, r.ID, 0, meta); err != nil {
			t.Fatal(err)
		}
		old = append(old, r.ID)
	}
	bOld := f.create(t, f.bOwner, resource.Input{Name: "b old"})
	if err := f.svc.Delete(ctx, f.bOwner, bOld.ID, 0, meta); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(resource.RestoreWindow - time.Hour)
	recent := f.create(t, f.member, resource.Input{Name: "recent"})
	if err := f.svc.Delete(ctx, f.owner, recent.ID, 0, meta); err != nil {
		t.Fatal(err)
	}
	live := f.create(t, f.member, resource.Input{Name: "live"})

	count := func() int {
		var n int
		if err := f.db.Owner.Get(&n, `SELECT count(*) FROM resources`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Nothing is past the window yet.
	if res, err := f.svc.PurgeDeleted(ctx); err != nil || res.Purged != 0 || res.Organizations != 2 || count() != 8 {
		t.Fatalf("early purge: %+v %v, %d rows", res, err, count())
	}
	f.clock.Advance(2 * time.Hour)
	// A hook that fails keeps the rows: files and rows go together.
	if _, err := f.svc.PurgeDeleted(ctx); err == nil || !strings.Contains(err.Error(), "storage down") || count() != 8 {
		t.Fatalf("purge with failing files: %v, %d rows", err, count())
	}
	files.fail = false
	res, err := f.svc.PurgeDeleted(ctx)
	if err != nil || res.Purged != 6 || res.Organizations != 2 {
		t.Fatalf("purge: %+v %v", res, err)
	}
	var left []uuid.UUID
	if err := f.db.Owner.Select(&left, `SELECT id FROM resources ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	want := []uuid.UUID{recent.ID, live.ID}
	slices.SortFunc(want, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want the recent deletion and the live one %v", left, want)
	}
	gotA := files.got[f.a]
	slices.SortFunc(gotA, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	slices.SortFunc(old, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	if !slices.Equal(gotA, old) || !slices.Equal(files.got[f.b], []uuid.UUID{bOld.ID}) {
		t.Fatalf("files removed for %v, want A %v and B %v", files.got, old, bOld.ID)
	}
	if n := f.audits(t, f.a, "resource.purged"); n != 5 {
		t.Fatalf("%d resource.purged in A", n)
	}
	if n := f.audits(t, f.b, "resource.purged"); n != 1 {
		t.Fatalf("%d resource.purged in B", n)
	}
	// A purged resource is gone for restore as well.
	if _, err := f.svc.Restore(ctx, f.owner, old[0], meta); code(err) != "not_found" {
		t.Fatalf("restore purged: %v", err)
	}
	// Run again: nothing more to do.
	if res, err := f.svc.PurgeDeleted(ctx); err != nil || res.Purged != 0 {
		t.Fatalf("second purge %+v %v", res, err)
	}
}

// txOnly is a Limiter that cannot reserve inside a message, so the
// service writes through InOrg transactions only.
type txOnly struct{ resource.Limiter }

// A create sent as one message and one written through a transaction
// answer the same resource, audit the same entry and count the same usage;
// a refused one-message create falls back and answers the transaction's
// exact error.
func TestCreateOneMessageMatchesTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 4)
	ctx := context.Background()
	slow := *f.svc
	slow.Limits = txOnly{f.svc.Limits}
	in := resource.Input{Name: "Pump", Description: "d", Status: resource.StatusArchived, Attributes: json.RawMessage(`{ "b": [1, 2], "a": "é" }`)}
	a, err := f.svc.Create(ctx, f.member, in, meta)
	if err != nil {
		t.Fatal(err)
	}
	b, err := slow.Create(ctx, f.member, in, meta)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID {
		t.Fatal("one ID for two creates")
	}
	norm := func(r *resource.Resource) resource.Resource { c := *r; c.ID = uuid.Nil; return c }
	if got, want := norm(a), norm(b); !reflect.DeepEqual(got, want) {
		t.Fatalf("one message created\n%+v\na transaction\n%+v", got, want)
	}
	var details []string
	if err := f.db.Owner.Select(&details, `SELECT details::text || actor_user_id::text || target_id FROM audit_log
		WHERE org_id = $1 AND action = 'resource.created' ORDER BY target_id = $2`, f.a, b.ID.String()); err != nil {
		t.Fatal(err)
	}
	if len(details) != 2 || strings.Replace(details[0], a.ID.String(), "", 1) != strings.Replace(details[1], b.ID.String(), "", 1) {
		t.Fatalf("audit entries %q", details)
	}
	// Two more fill the plan; past it, both paths answer the same 402.
	f.create(t, f.member, resource.Input{Name: "3"})
	f.create(t, f.member, resource.Input{Name: "4"})
	for _, s := range []*resource.Service{f.svc, &slow} {
		_, err := s.Create(ctx, f.member, resource.Input{Name: "5"}, meta)
		if e, ok := apperr.As(err); !ok || e.Code != "plan_limit_reached" || e.Limit.Usage != 4 {
			t.Fatalf("past the limit: %v", err)
		}
	}
	// A member removed since the token was issued is refused (by the
	// transaction the refused message falls back to), and nothing is kept.
	if _, err := f.db.Owner.Exec(`DELETE FROM memberships WHERE user_id = $1`, f.member.UserID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Delete(ctx, f.owner, a.ID, 0, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Create(ctx, f.member, resource.Input{Name: "removed"}, meta); code(err) != "not_a_member" {
		t.Fatalf("removed member: %v", err)
	}
	var n int
	if err := f.db.Owner.Get(&n, `SELECT count(*) FROM resources WHERE name = 'removed'`); err != nil || n != 0 {
		t.Fatalf("%d resources by the removed member (%v)", n, err)
	}
	var used int64
	if err := f.db.Owner.Get(&used, postgrestest.UsageSQL, f.a, "resources"); err != nil || used != 3 {
		t.Fatalf("usage %d (%v), want 3", used, err)
	}
}
