package httpapi_test

import (
	"bytes"
	"testing"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/auth"
)

// TestAccessTokenFromAnotherIssuer: a token signed with the right key but
// issued for another deployment (say staging sharing the key) is refused.
func TestAccessTokenFromAnotherIssuer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	key := bytes.Repeat([]byte("k"), 32) // newEnv's signing key
	ours, err := auth.NewIssuer(key, nil, baseURL)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := auth.NewIssuer(key, nil, "https://staging.keel.test")
	if err != nil {
		t.Fatal(err)
	}
	var id string
	if err := e.db.Owner.Get(&id, `INSERT INTO users (id, email, name, password_hash, email_verified_at)
		VALUES (gen_random_uuid(), 'iss@example.com', 'Iss', 'x', now()) RETURNING id::text`); err != nil {
		t.Fatal(err)
	}
	good, _ := ours.Issue(uuid.MustParse(id), uuid.Nil, "", uuid.Nil)
	bad, _ := theirs.Issue(uuid.MustParse(id), uuid.Nil, "", uuid.Nil)
	e.expect(req{method: "GET", path: "/api/v1/me", token: good}, 200, nil)
	e.problem(req{method: "GET", path: "/api/v1/me", token: bad}, 401, "invalid_token")
}
