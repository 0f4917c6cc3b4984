package httpapi_test

import (
	"encoding/json"
	"runtime"
	"testing"
)

// BenchmarkLogin measures logins per second through the real router, store
// and Redis throttle; argon2id (OWASP: 19 MiB, 2 passes) dominates.
//
//	go test -run XXX -bench Login -benchtime 5s ./internal/httpapi
func BenchmarkLogin(b *testing.B) {
	e := newEnv(b, envOpts{noMail: true})
	e.noCheck = true
	registerVerified(b, e, "bench@example.com")
	body := map[string]string{"email": "bench@example.com", "password": password}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w := e.do(req{method: "POST", path: "/api/v1/auth/login", body: body}); w.Code != 200 {
				b.Errorf("login: %d %s", w.Code, w.Body.String())
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}

// BenchmarkRefresh measures refresh-token rotations per second: a locked
// lookup by hash, the rotation mark, the membership read and a new token,
// in one transaction. Each goroutine follows its own chain of tokens.
func BenchmarkRefresh(b *testing.B) {
	e := newEnv(b, envOpts{noMail: true})
	e.noCheck = true
	registerVerified(b, e, "bench@example.com")
	chains := make(chan string, 4*runtime.GOMAXPROCS(0))
	for range cap(chains) {
		chains <- e.login("bench@example.com", password).RefreshToken
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		tok := <-chains
		for pb.Next() {
			w := e.do(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": tok}})
			var s session
			if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &s) != nil {
				b.Errorf("refresh: %d %s", w.Code, w.Body.String())
				return
			}
			tok = s.RefreshToken
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
}

func registerVerified(b *testing.B, e *env, email string) {
	b.Helper()
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{"email": email, "password": password, "name": "Bench"}}, 201, nil)
	if _, err := e.db.Owner.Exec(`UPDATE users SET email_verified_at = now() WHERE email = $1`, email); err != nil {
		b.Fatal(err)
	}
}
