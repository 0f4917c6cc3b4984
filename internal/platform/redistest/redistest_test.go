package redistest

import (
	"net"
	"strconv"
	"testing"
)

// FreePort's ports are distinct, below the kernel's ephemeral range, and
// free to bind.
func TestFreePort(t *testing.T) {
	lo, hi := portRange()
	if hi-lo < 1000 || lo < 1024 {
		t.Fatalf("range [%d, %d)", lo, hi)
	}
	seen := map[int]bool{}
	for range 50 {
		p := FreePort(t)
		if p < lo || p >= hi || seen[p] {
			t.Fatalf("port %d: outside [%d, %d) or handed out twice", p, lo, hi)
		}
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		defer l.Close()
	}
}
