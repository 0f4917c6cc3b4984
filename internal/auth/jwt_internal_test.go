package auth

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/tenant"
)

// The cache of verified tokens changes how often a token is parsed, not
// what is accepted: a cached token still expires, and a token that differs
// in any byte is verified from scratch.
func TestVerifiedTokenCache(t *testing.T) {
	t.Parallel()
	now := time.Now()
	i, err := NewIssuer(bytes.Repeat([]byte("k"), 32), nil, "https://app.keel.test")
	if err != nil {
		t.Fatal(err)
	}
	i.now = func() time.Time { return now }
	tok, err := i.Issue(uuid.New(), uuid.New(), tenant.RoleOwner, uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	first, err := i.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := i.verified.Get(tok); !ok {
		t.Fatal("a verified token was not cached")
	}
	again, err := i.Verify(tok)
	if err != nil || again.Subject != first.Subject || again.Role != tenant.RoleOwner {
		t.Fatalf("cached verify: %+v %v", again, err)
	}

	// A forged signature or payload is a different string: no cache hit.
	parts := strings.Split(tok, ".")
	sig := []byte(parts[2])
	sig[0] ^= 1
	if _, err := i.Verify(parts[0] + "." + parts[1] + "." + string(sig)); err == nil {
		t.Fatal("a token with a changed signature was accepted")
	}
	if _, err := i.Verify(parts[0] + "." + parts[1] + "x." + parts[2]); err == nil {
		t.Fatal("a token with a changed payload was accepted")
	}

	// Past its expiry (and the leeway), the cached token is refused and
	// dropped from the cache.
	now = now.Add(AccessTokenTTL + leeway + time.Second)
	if _, err := i.Verify(tok); err == nil {
		t.Fatal("an expired token was accepted from the cache")
	}
	if _, ok := i.verified.Get(tok); ok {
		t.Fatal("an expired token stayed in the cache")
	}
}
