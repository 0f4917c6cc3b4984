package httpapi_test

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/keelhq/keel/internal/plan"
)

// BenchmarkResourceList measures the list the wrk benchmark loads
// (bench/wrk-resources.sh), in process: the 20 newest of a tenant with
// 2,000 resources, through the whole router (access token, rate limit,
// the one-trip tenant read under RLS, JSON). Run with -cpuprofile to see
// where the API's time goes; it has no HTTP sockets, so it shows the
// API's own share.
//
//	go test -run XXX -bench ResourceList -benchtime 5s -cpuprofile /tmp/list.prof ./internal/httpapi
func BenchmarkResourceList(b *testing.B) {
	e, s := benchTenant(b)
	if _, err := e.db.Owner.Exec(`INSERT INTO resources (org_id, id, name, description, attributes, created_at, updated_at)
		SELECT $1, gen_random_uuid(), 'Resource ' || i, 'A description of resource ' || i,
			jsonb_build_object('color', 'blue', 'size', i, 'tags', jsonb_build_array('a', 'b')),
			now() - i * interval '1 minute', now() - i * interval '1 minute'
		FROM generate_series(1, 2000) i`, s.OrganizationID); err != nil {
		b.Fatal(err)
	}
	if _, err := e.db.Owner.Exec(`ANALYZE resources`); err != nil {
		b.Fatal(err)
	}
	path := "/api/v1/resources?sort=-created_at&limit=20"
	if w := e.do(req{method: "GET", path: path, token: s.AccessToken}); w.Code != 200 {
		b.Fatalf("list: %d %s", w.Code, w.Body.String())
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w := e.do(req{method: "GET", path: path, token: s.AccessToken}); w.Code != 200 {
				b.Errorf("list: %d %s", w.Code, w.Body.String())
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lists/s")
}

// BenchmarkResourceCreate measures POST /api/v1/resources in process, in
// one tenant as the wrk benchmark's creates are: the whole router and the
// create's transaction (caller check, INSERT, audit entry, plan and usage
// counter) against the real database, without sockets. "2 at a time" is
// bound by CPU; "16 at a time" by the usage counter's row lock, held from
// the increment to the commit.
//
//	go test -run XXX -bench ResourceCreate -benchtime 5s ./internal/httpapi
func BenchmarkResourceCreate(b *testing.B) {
	for _, par := range []int{1, 8} { // goroutines per GOMAXPROCS (2 here)
		b.Run(strconv.Itoa(par*runtime.GOMAXPROCS(0))+" at a time", func(b *testing.B) {
			e, s := benchTenant(b)
			body := `{"name":"Quarterly invoice 4821","description":"Created by the benchmark","status":"active","attributes":{"priority":"high","tags":["bench"]}}`
			b.SetParallelism(par)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if w := e.do(req{method: "POST", path: "/api/v1/resources", body: body, token: s.AccessToken}); w.Code != 201 {
						b.Errorf("create: %d %s", w.Code, w.Body.String())
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}

// benchTenant is a router on a fresh database whose one organization is
// on a plan without limits (its counters still counted), and its owner's
// session.
func benchTenant(b *testing.B) (*env, session) {
	plans, err := plan.Parse([]byte(`default: bench
fallback: bench
plans:
  - id: bench
    name: Bench
    limits: {seats: unlimited, resources: unlimited, storage_bytes: unlimited, api_requests_per_minute: 1000000000}
`))
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, envOpts{noMail: true, plans: plans})
	e.noCheck = true
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
		"email": "list@example.com", "password": password, "name": "Bench", "organization_name": "Bench Org"}}, 202, nil)
	if _, err := e.db.Owner.Exec(`UPDATE users SET email_verified_at = now() WHERE email = 'list@example.com'`); err != nil {
		b.Fatal(err)
	}
	return e, e.login("list@example.com", password)
}
