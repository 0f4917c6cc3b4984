// Package idempotency makes a retried write safe: the first response to a
// request sent with an Idempotency-Key is kept for a day, and a retry of the
// same request with the same key gets that response again instead of doing
// the work twice. The HTTP middleware (internal/httpapi) decides which
// requests take part and how a response is captured; this package owns the
// rules: scoping, fingerprints, the in-flight lock and its expiry, waiting
// for a concurrent twin, and what is never stored.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Defaults of the Service's timings.
const (
	// DefaultTTL is how long a key and its response are kept.
	DefaultTTL = 24 * time.Hour
	// DefaultLockTTL is how long a request may hold its key before a twin
	// may take it over: a request cut by a crash frees its key after this.
	DefaultLockTTL = time.Minute
	// DefaultWait is how long a twin waits for the first request to finish
	// before it answers 409 request_in_progress.
	DefaultWait = 10 * time.Second
	// MaxKeyLength bounds a key.
	MaxKeyLength = 255
)

// Errors a client sees.
var (
	ErrKeyReused = &apperr.Error{Kind: apperr.Unprocessable, Code: "idempotency_key_reused",
		Message: "This Idempotency-Key was already used with another request (method, path, query or body) in the last 24 hours; use a new key for a new request."}
	ErrInProgress = &apperr.Error{Kind: apperr.Conflict, Code: "request_in_progress", RetryAfter: 1,
		Message: "A request with this Idempotency-Key is still being processed; retry in a moment to get its response."}
	ErrReplayUnavailable = &apperr.Error{Kind: apperr.Conflict, Code: "idempotency_replay_unavailable",
		Message: "A request with this Idempotency-Key already succeeded, but its response held a secret that is never stored, so it cannot be sent again. Use a new key to do the work again."}
)

// ValidKey reports whether k is an acceptable key: 1 to 255 printable
// ASCII characters (space included).
func ValidKey(k string) bool {
	if len(k) == 0 || len(k) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// ErrInvalidKey is the 400 of a malformed Idempotency-Key header.
var ErrInvalidKey = apperr.New(apperr.Invalid, "idempotency_key_invalid",
	"Idempotency-Key must be one header of 1 to 255 printable ASCII characters.")

// Scope names a key: keys of different organizations or credentials never
// meet, so two API keys (or a user and a key) may use the same string.
type Scope struct {
	OrgID uuid.UUID
	// Credential is the user's ID for a session, the API key's ID for a key.
	Credential uuid.UUID
	Key        string
}

// Fingerprint identifies a request: its method, path, query (its pairs in
// a canonical order) and body bytes. A key replays only the request whose
// fingerprint it was first used with.
func Fingerprint(method, path, rawQuery string, body []byte) []byte {
	q := rawQuery
	if v, err := url.ParseQuery(rawQuery); err == nil {
		q = v.Encode()
	}
	h := sha256.New()
	for _, part := range []string{method, path, q} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	h.Write(body)
	return h.Sum(nil)
}

// Response is a stored answer.
type Response struct {
	Status int
	// Header holds the replayed headers (Content-Type, Location, ETag,
	// Last-Modified), one value each.
	Header map[string]string
	Body   []byte
	// Unreplayable marks a response that held a secret: the work was done,
	// the answer is not kept.
	Unreplayable bool
}

// Record is a key's row.
type Record struct {
	Fingerprint []byte
	LockID      uuid.UUID
	LockedUntil time.Time
	ExpiresAt   time.Time
	Response    *Response // nil while the first request runs
}

// Claim is a new or taken-over key's row as the claimant writes it.
type Claim struct {
	Fingerprint []byte
	LockID      uuid.UUID
	Now         time.Time
	LockedUntil time.Time
	ExpiresAt   time.Time
}

// Store keeps the keys; idempotencydb implements it. Every method runs on a
// transaction whose tenant is the scope's organization.
type Store interface {
	// Claim inserts s's row locked by c.LockID, or takes over an existing
	// one that expired, or whose lock expired while it had c's
	// fingerprint (its request was cut before it answered). It reports
	// whether it claimed; when it did not, the row is someone else's.
	Claim(ctx context.Context, tx sqlx.ExtContext, s Scope, c Claim) (bool, error)
	// Get returns s's row; postgres.ErrNotFound when there is none.
	Get(ctx context.Context, tx sqlx.QueryerContext, s Scope) (*Record, error)
	// Complete stores r in s's row while lockID still holds it, and reports
	// whether it did.
	Complete(ctx context.Context, tx sqlx.ExecerContext, s Scope, lockID uuid.UUID, r Response) (bool, error)
	// Release deletes s's row while lockID still holds it.
	Release(ctx context.Context, tx sqlx.ExecerContext, s Scope, lockID uuid.UUID) error
}

// Service runs keys on DB. Zero durations take the defaults.
type Service struct {
	DB    *sqlx.DB
	Store Store
	// Now is the clock that expiries are measured on; nil means time.Now.
	Now func() time.Time
	// TTL, LockTTL and Wait: see DefaultTTL, DefaultLockTTL and DefaultWait.
	// A negative Wait never waits.
	TTL, LockTTL, Wait time.Duration
	// Poll is the interval at which a twin looks for the first request's
	// response (default 50 ms).
	Poll time.Duration
	// Waiting, when set, is called each time a twin starts waiting for the
	// first request's response, so a test can see it wait.
	Waiting func(Scope)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Hold is how long a claimed key stays locked; the caller bounds the work
// it does under the lock by it, so the lock does not expire while the work
// may still commit.
func (s *Service) Hold() time.Duration { return orDefault(s.LockTTL, DefaultLockTTL) }

// Lock is a claimed key: the work runs, then Complete stores its response
// or Release frees the key.
type Lock struct {
	s     *Service
	scope Scope
	id    uuid.UUID
}

// Begin claims s for the request with fingerprint fp. It returns a Lock
// when the work must run now; the stored Response when the same request
// already ran (a replay); or ErrKeyReused (another request used the key),
// ErrReplayUnavailable (the work ran, its answer held a secret) or
// ErrInProgress (the first request is still running after Wait).
func (s *Service) Begin(ctx context.Context, sc Scope, fp []byte) (*Lock, *Response, error) {
	wait := orDefault(s.Wait, DefaultWait)
	poll := orDefault(s.Poll, 50*time.Millisecond)
	deadline := time.Now().Add(wait)
	for {
		lock, rec, err := s.try(ctx, sc, fp)
		if err != nil || lock != nil {
			return lock, nil, err
		}
		if rec != nil {
			if !bytes.Equal(rec.Fingerprint, fp) {
				return nil, nil, ErrKeyReused
			}
			if rec.Response != nil {
				if rec.Response.Unreplayable {
					return nil, nil, ErrReplayUnavailable
				}
				return nil, rec.Response, nil
			}
			// The first request still runs: wait for its answer, or for
			// its lock to expire (then the next try takes the key over).
			if wait < 0 || !time.Now().Add(poll).Before(deadline) {
				return nil, nil, ErrInProgress
			}
			if s.Waiting != nil {
				s.Waiting(sc)
			}
			t := time.NewTimer(poll)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, nil, ctx.Err()
			case <-t.C:
			}
		}
		// No record: it was released between the claim and the read; try again.
	}
}

// try claims sc once; when another request holds it, it returns that row
// (nil when the row vanished in between).
func (s *Service) try(ctx context.Context, sc Scope, fp []byte) (*Lock, *Record, error) {
	now := s.now()
	c := Claim{Fingerprint: fp, LockID: uuid.New(), Now: now,
		LockedUntil: now.Add(s.Hold()), ExpiresAt: now.Add(orDefault(s.TTL, DefaultTTL))}
	var (
		claimed bool
		rec     *Record
	)
	err := postgres.InTx(ctx, s.DB, sc.OrgID, func(tx *sqlx.Tx) error {
		var err error
		if claimed, err = s.Store.Claim(ctx, tx, sc, c); err != nil || claimed {
			return err
		}
		rec, err = s.Store.Get(ctx, tx, sc)
		if errors.Is(err, postgres.ErrNotFound) {
			rec, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("idempotency key: %w", err)
	}
	if claimed {
		return &Lock{s: s, scope: sc, id: c.LockID}, nil, nil
	}
	return nil, rec, nil
}

// Complete stores r as the key's response. When the lock expired and a twin
// took the key over meanwhile, nothing is stored (the twin's answer will be).
func (l *Lock) Complete(ctx context.Context, r Response) error {
	return postgres.InTx(ctx, l.s.DB, l.scope.OrgID, func(tx *sqlx.Tx) error {
		_, err := l.s.Store.Complete(ctx, tx, l.scope, l.id, r)
		return err
	})
}

// Release frees the key without a response: the work did not happen (or
// failed), and a retry runs it again.
func (l *Lock) Release(ctx context.Context) error {
	return postgres.InTx(ctx, l.s.DB, l.scope.OrgID, func(tx *sqlx.Tx) error {
		return l.s.Store.Release(ctx, tx, l.scope, l.id)
	})
}
