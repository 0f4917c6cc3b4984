package idempotency_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/idempotency"
	"github.com/keelhq/keel/internal/idempotency/idempotencydb"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

func TestValidKey(t *testing.T) {
	t.Parallel()
	for k, want := range map[string]bool{
		"":                       false,
		"a":                      true,
		"a b":                    true,
		"~!@#$%^&*()_+{}|:<>?":   true,
		strings.Repeat("x", 255): true,
		strings.Repeat("x", 256): false,
		"tab\t":                  false,
		"new\nline":              false,
		"del\x7f":                false,
		"é":                      false,
	} {
		if got := idempotency.ValidKey(k); got != want {
			t.Errorf("ValidKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	base := idempotency.Fingerprint("POST", "/a", "x=1&y=2", []byte(`{}`))
	same := idempotency.Fingerprint("POST", "/a", "y=2&x=1", []byte(`{}`))
	if !bytes.Equal(base, same) {
		t.Fatal("query order changed the fingerprint")
	}
	for name, fp := range map[string][]byte{
		"method": idempotency.Fingerprint("PUT", "/a", "x=1&y=2", []byte(`{}`)),
		"path":   idempotency.Fingerprint("POST", "/b", "x=1&y=2", []byte(`{}`)),
		"query":  idempotency.Fingerprint("POST", "/a", "x=1&y=3", []byte(`{}`)),
		"body":   idempotency.Fingerprint("POST", "/a", "x=1&y=2", []byte(`{ }`)),
		// Length prefixes keep a part from leaking into the next.
		"split": idempotency.Fingerprint("POST", "/ax=1&y=2", "", []byte(`{}`)),
	} {
		if bytes.Equal(base, fp) {
			t.Errorf("a different %s gave the same fingerprint", name)
		}
	}
}

type fixture struct {
	svc   *idempotency.Service
	scope idempotency.Scope
	now   time.Time
	mu    sync.Mutex
}

func (f *fixture) clock() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := postgrestest.New(t)
	org := uuid.New()
	if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'o')`, org); err != nil {
		t.Fatal(err)
	}
	f := &fixture{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	f.svc = &idempotency.Service{DB: db.App, Store: idempotencydb.Store{}, Now: f.clock, Wait: -1}
	f.scope = idempotency.Scope{OrgID: org, Credential: uuid.New(), Key: "k"}
	return f
}

// TestConcurrentClaims: of many concurrent Begins of one key, exactly one
// gets the lock; the others see it in progress.
func TestConcurrentClaims(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fp := idempotency.Fingerprint("POST", "/x", "", nil)
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	locks, busy := 0, 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lock, _, err := f.svc.Begin(context.Background(), f.scope, fp)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case lock != nil:
				locks++
			case errors.Is(err, idempotency.ErrInProgress):
				busy++
			default:
				t.Errorf("begin: %v", err)
			}
		}()
	}
	wg.Wait()
	if locks != 1 || busy != n-1 {
		t.Fatalf("%d locks, %d in progress", locks, busy)
	}
}

// TestLifecycle: complete, replay, reuse, unreplayable, release, expiry,
// and another organization's same key.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	fp := idempotency.Fingerprint("POST", "/x", "", []byte("a"))
	lock, _, err := f.svc.Begin(ctx, f.scope, fp)
	if err != nil || lock == nil {
		t.Fatal(err)
	}
	want := idempotency.Response{Status: 201, Body: []byte(`{"id":1}`), Header: map[string]string{"Location": "/x/1"}}
	if err := lock.Complete(ctx, want); err != nil {
		t.Fatal(err)
	}
	_, got, err := f.svc.Begin(ctx, f.scope, fp)
	if err != nil || got == nil || got.Status != 201 || string(got.Body) != `{"id":1}` || got.Header["Location"] != "/x/1" {
		t.Fatalf("replay: %+v %v", got, err)
	}
	if _, _, err := f.svc.Begin(ctx, f.scope, idempotency.Fingerprint("POST", "/x", "", []byte("b"))); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Fatalf("reuse: %v", err)
	}
	// Released keys run again.
	other := f.scope
	other.Key = "released"
	lock, _, _ = f.svc.Begin(ctx, other, fp)
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if lock2, _, err := f.svc.Begin(ctx, other, idempotency.Fingerprint("POST", "/y", "", nil)); err != nil || lock2 == nil {
		t.Fatalf("after release: %v", err)
	}
	// Secret-bearing answers keep nothing but the fact.
	secret := f.scope
	secret.Key = "secret"
	lock, _, _ = f.svc.Begin(ctx, secret, fp)
	if err := lock.Complete(ctx, idempotency.Response{Status: 201, Body: []byte("s3cr3t"), Unreplayable: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Begin(ctx, secret, fp); !errors.Is(err, idempotency.ErrReplayUnavailable) {
		t.Fatalf("unreplayable: %v", err)
	}
	// The same key string of another credential is another key.
	elsewhere := f.scope
	elsewhere.Credential = uuid.New()
	if l, _, err := f.svc.Begin(ctx, elsewhere, idempotency.Fingerprint("POST", "/z", "", nil)); err != nil || l == nil {
		t.Fatalf("other credential: %v", err)
	}
	// After 24 hours the key is free for anything.
	f.advance(idempotency.DefaultTTL)
	if l, _, err := f.svc.Begin(ctx, f.scope, idempotency.Fingerprint("POST", "/other", "", nil)); err != nil || l == nil {
		t.Fatalf("after expiry: %v", err)
	}
}
