package httpapi_test

import (
	"encoding/json"
	"runtime"
	"strconv"
	"testing"
	"time"
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
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{"email": email, "password": password, "name": "Bench"}}, 202, nil)
	if _, err := e.db.Owner.Exec(`UPDATE users SET email_verified_at = now() WHERE email = $1`, email); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRegister compares registering a new address with registering
// one that has an account: both hash the password and answer the same 202,
// and the second pads its shorter transaction, so their times should be
// close (a gap would tell addresses apart). The two alternate, each going
// first in turn, so a machine's changing load and the garbage one argon2id
// run leaves for the next weigh on both alike; it reports each one's median
// and their difference.
//
//	go test -run XXX -bench Register -benchtime 60x ./internal/httpapi
func BenchmarkRegister(b *testing.B) {
	e := newEnv(b, envOpts{noMail: true})
	e.noCheck = true
	registerVerified(b, e, "taken@example.com")
	register := func(email string) time.Duration {
		start := time.Now()
		w := e.do(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
			"email": email, "password": password, "name": "Bench"}})
		if w.Code != 202 {
			b.Fatalf("register: %d %s", w.Code, w.Body.String())
		}
		return time.Since(start)
	}
	var fresh, taken []time.Duration
	for i := 0; b.Loop(); i++ {
		if i%4 == 0 || i%4 == 3 { // new, taken, taken, new: neither always goes first
			fresh = append(fresh, register("new"+strconv.Itoa(i)+"@example.com"))
		} else {
			taken = append(taken, register("taken@example.com"))
		}
	}
	if len(taken) == 0 {
		return
	}
	nf, nt := median(fresh), median(taken)
	b.ReportMetric(float64(nf.Microseconds())/1000, "new-ms")
	b.ReportMetric(float64(nt.Microseconds())/1000, "existing-ms")
	b.ReportMetric(float64((nt-nf).Microseconds())/1000, "diff-ms")
}
