package httpapi_test

import (
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
	s := e.login("list@example.com", password)
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
