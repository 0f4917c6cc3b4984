// Package redistest starts a private redis-server on a free loopback port for
// one test, so tests never share or flush the machine's Redis, and can stop
// and restart it to test outages.
package redistest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/tooltest"
	"github.com/redis/go-redis/v9"
)

// Server is a running (or stopped) private Redis.
type Server struct {
	t    testing.TB
	Port int
	URL  string
	dir  string
	cmd  *exec.Cmd
	// persistent servers keep an fsync-always AOF in dir across restarts.
	persistent bool
}

// FreePort returns a loopback port that was free a moment ago, for a
// server the test starts next. It is drawn at random from below the
// kernel's ephemeral range: a port the kernel handed out (":0") can be
// given again, in the moment before the server binds it, as the local
// port of any outgoing connection (a test's PostgreSQL clients make
// thousands), which a port outside that range never is. A process never
// gets the same port twice; another test binary picks the same one only by
// a rare chance in the moment before the bind, which the e2e starts retry.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := portRange()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port
	}
	t.Fatalf("free port: none free in [%d, %d) after 200 tries", lo, hi)
	return 0
}

var handedOut sync.Map // int → true: the ports FreePort returned

// portRange is where FreePort draws from: the 10,000 ports below the
// kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768 by
// default), never below 1024.
func portRange() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				hi = n
			}
		}
	}
	return max(1024, hi-10000), hi
}

// Start runs a redis-server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, Port: FreePort(t), dir: t.TempDir()}
	s.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port)
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// StartPersistent is Start with an append-only file synced on every write,
// as production Redis runs, so what the server acknowledged survives Stop
// (a kill -9) and Restart.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, Port: FreePort(t), dir: t.TempDir(), persistent: true}
	s.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port)
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server again on the same port after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatalf("redistest: redis-server not found (run `make services`): %v", err)
	}
	aof := []string{"--appendonly", "no"}
	if s.persistent {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--dir", s.dir, "--maxmemory-policy", "noeviction"}, aof...)
	tooltest.NoInheritedFDs()
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start: %v", err)
	}
	s.cmd = cmd
	if err := Await(s.Addr(), 10*time.Second); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
}

// Await pings the Redis at addr until it answers, or fails after timeout.
func Await(addr string, timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis at %s did not answer: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Client returns a go-redis client of the server; the caller closes it.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr()})
}

// QuietClientLogs stops go-redis from printing every refused dial to
// stderr; call it from TestMain in packages that stop Redis on purpose.
func QuietClientLogs() { redis.SetLogger(quiet{}) }

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
