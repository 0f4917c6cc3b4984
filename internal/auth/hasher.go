package auth

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/keelhq/keel/internal/apperr"
)

// Hasher runs argon2id with a bound on how many hashes run at once. Each
// run holds Params.Memory (19 MiB with OWASPParams) until it returns, so an
// unbounded number of concurrent logins or registrations is an unbounded
// amount of memory; more runs than cores do not finish sooner either. A
// caller that waits longer than Wait for a slot gets 503 server_busy with
// Retry-After. Every argon2id run of the service goes through one Hasher.
type Hasher struct {
	Params PasswordParams
	Wait   time.Duration
	slots  chan struct{}

	hashes, verifies, busy, inFlight, peak atomic.Int64
}

// DefaultHashWait is how long a request waits for a hashing slot before it
// is answered 503 server_busy.
const DefaultHashWait = 2 * time.Second

// NewHasher returns a Hasher running at most concurrency hashes at once
// (at least 1) and waiting at most wait (DefaultHashWait when 0) for a slot.
func NewHasher(p PasswordParams, concurrency int, wait time.Duration) *Hasher {
	if wait <= 0 {
		wait = DefaultHashWait
	}
	return &Hasher{Params: p, Wait: wait, slots: make(chan struct{}, max(1, concurrency))}
}

// DefaultHashConcurrency sizes a Hasher for a machine with memLimit bytes
// of memory (0: unknown) and cores usable CPUs. argon2id with one lane is
// one CPU's work, so more runs than cores only queue inside the runtime;
// and hashing may take at most a quarter of memory, counting each run twice
// because the garbage collector lets the heap grow to about twice what is
// live (GOGC=100) before it reclaims finished runs.
func DefaultHashConcurrency(memLimit int64, cores int, p PasswordParams) int {
	n := max(1, cores)
	if memLimit > 0 && p.Memory > 0 {
		perRun := 2 * int64(p.Memory) * 1024
		n = min(n, int(memLimit/4/perRun))
	}
	return max(1, n)
}

// Concurrency is how many hashes may run at once.
func (h *Hasher) Concurrency() int { return cap(h.slots) }

// HashStats counts what a Hasher did since it was made.
type HashStats struct {
	Hashes, Verifies int64 // argon2id runs of each kind
	Busy             int64 // callers refused with server_busy
	PeakInFlight     int64 // most runs at once
}

// Stats returns the counts so far.
func (h *Hasher) Stats() HashStats {
	return HashStats{Hashes: h.hashes.Load(), Verifies: h.verifies.Load(), Busy: h.busy.Load(), PeakInFlight: h.peak.Load()}
}

// errServerBusy is the answer when no hashing slot frees up within Wait.
func (h *Hasher) errServerBusy() error {
	return &apperr.Error{Kind: apperr.Unavailable, Code: "server_busy", RetryAfter: int(math.Ceil(h.Wait.Seconds())),
		Message: "The server is busy; try again in a few seconds."}
}

// acquire waits for a slot, at most Wait; the caller must call release
// when it returns nil.
func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
	default:
		t := time.NewTimer(h.Wait)
		defer t.Stop()
		select {
		case h.slots <- struct{}{}:
		case <-t.C:
			h.busy.Add(1)
			return h.errServerBusy()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n := h.inFlight.Add(1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	return nil
}

func (h *Hasher) release() {
	h.inFlight.Add(-1)
	<-h.slots
}

// Hash returns the PHC string of password under h.Params, or server_busy.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	h.hashes.Add(1)
	return HashPassword(password, h.Params)
}

// Verify reports whether password matches the PHC string encoded (see
// VerifyPassword), or returns server_busy.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	h.verifies.Add(1)
	return VerifyPassword(password, encoded)
}
