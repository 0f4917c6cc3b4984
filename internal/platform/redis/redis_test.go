package redis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/platform/redis"
)

// syncBuffer is a bytes.Buffer safe for go-redis's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A dial that fails is reported by go-redis itself; after RouteLibraryLogs
// that report is a JSON line of the binary's logger, never raw stderr.
func TestLibraryLogsAreJSON(t *testing.T) {
	var out syncBuffer
	redis.RouteLibraryLogs(zerolog.New(&out).With().Str("service", "test").Logger())
	// A port that refuses: listen, note it, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conn, err := redis.ParseURL("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	c := redis.New(conn)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := redis.Ping(ctx, c); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.Contains(l, "failed to dial") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("go-redis logged a line that is not JSON: %q", l)
			}
		}
	}
	if line == nil {
		t.Fatalf("no go-redis dial failure in the log: %q", out.String())
	}
	if line["component"] != "go-redis" || line["service"] != "test" || line["level"] != "warn" {
		t.Fatalf("dial failure logged as %v", line)
	}
}
