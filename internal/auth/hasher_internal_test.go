package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/apperr"
)

func TestDefaultHashConcurrency(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		mem   int64
		cores int
		want  int
	}{
		{0, 2, 2},               // memory unknown: one per core
		{24 << 30, 2, 2},        // plenty of memory: cores bound it
		{24 << 30, 64, 64},      // a big machine
		{512 * mib, 16, 3},      // a 512 MiB container: 128 MiB for hashing, 38 MiB a run
		{256 * mib, 4, 1},       // 64 MiB for hashing: one run
		{64 * mib, 4, 1},        // never less than one
		{2 << 30, 0, 1},         // GOMAXPROCS is at least 1
		{8 << 30, 8, 8},         // memory would allow 26
		{1 << 30, 8, 6},         // 256 MiB / 38 MiB
		{1<<30 + 512*mib, 8, 8}, // 384 MiB / 38 MiB = 10, cores 8
		{1 << 30, 1, 1},         // one core
		{1 << 40, 1024, 1024},   // no arbitrary cap
	} {
		if got := DefaultHashConcurrency(tc.mem, tc.cores, OWASPParams); got != tc.want {
			t.Errorf("DefaultHashConcurrency(%d MiB, %d cores) = %d, want %d", tc.mem/mib, tc.cores, got, tc.want)
		}
	}
}

// A caller that finds every slot taken waits at most Wait, then gets
// server_busy with Retry-After; a slot that frees up in time is taken.
func TestHasherRefusesWhenBusy(t *testing.T) {
	cheap := PasswordParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	h := NewHasher(cheap, 1, 20*time.Millisecond)
	ctx := context.Background()
	if err := h.acquire(ctx); err != nil { // the test holds the only slot
		t.Fatal(err)
	}
	_, err := h.Hash(ctx, "a long enough password")
	if e, ok := apperr.As(err); !ok || e.Code != "server_busy" || e.Kind != apperr.Unavailable || e.RetryAfter != 1 {
		t.Fatalf("Hash with no slot free: %v", err)
	}
	if _, err := h.Verify(ctx, "x", "y"); !errors.As(err, new(*apperr.Error)) {
		t.Fatalf("Verify with no slot free: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	h.Wait = time.Hour
	if _, err := h.Hash(cctx, "a long enough password"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with a cancelled context: %v", err)
	}
	h.release()
	hash, err := h.Hash(ctx, "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Verify(ctx, "a long enough password", hash); err != nil || !ok {
		t.Fatalf("verify %v %v", ok, err)
	}
	if st := h.Stats(); st != (HashStats{Hashes: 1, Verifies: 1, Busy: 2, PeakInFlight: 1}) {
		t.Fatalf("stats %+v", st)
	}
	if h.Concurrency() != 1 || NewHasher(cheap, 0, 0).Wait != DefaultHashWait {
		t.Fatal("defaults")
	}
}

func TestIPBucket(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::1":      "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"fe80::1%eth0":         "fe80::/64",
		"":                     "",
		"not an address":       "not an address",
	} {
		if got := ipBucket(in); got != want {
			t.Errorf("ipBucket(%q) = %q, want %q", in, got, want)
		}
	}
}
