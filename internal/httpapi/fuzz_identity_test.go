package httpapi_test

import (
	"context"
	"net/http"
	"testing"
)

// The fuzz targets send arbitrary bodies to register, login and refresh
// through the real router and stores: whatever the body, the answer is a
// 2xx or a 4xx problem, never a 5xx or a panic. `go test` runs the seeds;
// `go test -fuzz FuzzLogin -fuzztime 30s ./internal/httpapi` explores.

func fuzzEnv(f *testing.F) *env {
	e := newEnv(f, envOpts{noMail: true})
	// Keep known accounts for the login seeds to reach the password check.
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
		"email": "fuzz@example.com", "password": password, "name": "Fuzz"}}, 202, nil)
	if _, err := e.db.Owner.Exec(`UPDATE users SET email_verified_at = now()`); err != nil {
		f.Fatal(err)
	}
	return e
}

func fuzzPost(t *testing.T, e *env, path string, body []byte) {
	e.t = t
	w := e.do(req{method: "POST", path: path, body: body, ip: "192.0.2.10"})
	if w.Code >= 500 {
		t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body.String())
	}
	if w.Code >= 400 && w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("POST %s %q: %d without problem+json", path, body, w.Code)
	}
	if w.Code != http.StatusOK && w.Code != http.StatusAccepted && w.Code != http.StatusNoContent && w.Code < 400 {
		t.Fatalf("POST %s %q: unexpected %d", path, body, w.Code)
	}
}

var commonSeeds = []string{
	``, `{}`, `[]`, `null`, `"x"`, `{"email":1}`, `{"email":null,"password":null}`, `{"a":1}`, `{`, `{}{}`,
	"{\"email\":\"\x00@example.com\"}", `{"email":"` + string(make([]byte, 300)) + `"}`,
}

func FuzzRegister(f *testing.F) {
	e := fuzzEnv(f)
	for _, s := range append(commonSeeds,
		`{"email":"new@example.com","password":"correct horse battery staple 42","name":"N"}`,
		`{"email":"FUZZ@example.com","password":"correct horse battery staple 42","name":"Dup"}`,
		`{"email":"x@example.com","password":"passwordpassword","name":"W"}`,
		`{"email":"x@example.com","password":"short","name":""}`,
		`{"email":"x@example.com","password":"correct horse battery staple 42","name":"N","organization_name":"\n"}`,
		`{"email":"a@b","password":"correct horse battery staple 42","name":"N"}`,
	) {
		f.Add([]byte(s))
	}
	rdb := e.redis.Client()
	defer rdb.Close()
	f.Fuzz(func(t *testing.T, body []byte) {
		// The per-IP registration budget would answer 429 to everything after it.
		if err := rdb.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		fuzzPost(t, e, "/api/v1/auth/register", body)
	})
}

func FuzzLogin(f *testing.F) {
	e := fuzzEnv(f)
	for _, s := range append(commonSeeds,
		`{"email":"fuzz@example.com","password":"correct horse battery staple 42"}`,
		`{"email":"fuzz@example.com","password":"wrong"}`,
		`{"email":"fuzz@example.com","password":"correct horse battery staple 42","totp_code":"123456"}`,
		`{"email":"nobody@example.com","password":"x"}`,
		`{"email":"fuzz@example.com","password":"`+string(make([]byte, 200))+`"}`,
	) {
		f.Add([]byte(s))
	}
	rdb := e.redis.Client()
	defer rdb.Close()
	f.Fuzz(func(t *testing.T, body []byte) {
		// Failures would lock the account and the IP and hide later paths.
		if err := rdb.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		fuzzPost(t, e, "/api/v1/auth/login", body)
	})
}

func FuzzRefresh(f *testing.F) {
	e := fuzzEnv(f)
	s := e.login("fuzz@example.com", password)
	for _, b := range append(commonSeeds,
		`{"refresh_token":"`+s.RefreshToken+`"}`,
		`{"refresh_token":"`+s.RefreshToken+`"}`,
		`{"refresh_token":""}`,
		`{"refresh_token":"AAAA"}`,
		`{"refresh_token":123}`,
	) {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) { fuzzPost(t, e, "/api/v1/auth/refresh", body) })
}
