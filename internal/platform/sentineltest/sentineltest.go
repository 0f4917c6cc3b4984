// Package sentineltest starts a Redis Sentinel setup for one test: a master,
// one replica and three Sentinels (`redis-server --sentinel`, from the same
// Debian redis-server package), each on a free loopback port with its
// files in the test's temporary directory, all killed when the test ends.
//
// The replica replicates through a Link, a TCP proxy the test can hold:
// Redis replication is asynchronous, and on one machine it is so fast that
// the window in which the master has acknowledged a write the replica does
// not have yet is too short to hit. Holding the link opens that window on
// purpose, so a test can kill the master inside it.
package sentineltest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/tooltest"
)

// MasterName is the name the Sentinels monitor the master under.
const MasterName = "keel"

// Timing of the Sentinels. DownAfter is how long the master must stay
// silent before a Sentinel holds it down. FailoverTimeout bounds one
// failover attempt; a Sentinel also waits that long before re-pointing a
// replica that replicates from an address other than the master's (the
// Link), so it is kept well above a test's length.
const (
	DownAfter       = 1000 * time.Millisecond
	FailoverTimeout = 30 * time.Second
)

// Node is one redis-server process (a data node or a Sentinel).
type Node struct {
	t    testing.TB
	Port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

// Addr is the node's host:port.
func (n *Node) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// Client returns a go-redis client of the node; the caller closes it.
func (n *Node) Client() *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: n.Addr(), MaxRetries: -1, DialTimeout: time.Second})
}

func (n *Node) start(args ...string) {
	n.t.Helper()
	if n.cmd != nil {
		n.t.Fatalf("sentineltest: node %d already runs", n.Port)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		n.t.Fatalf("sentineltest: redis-server not found (run `make services`): %v", err)
	}
	n.args = args
	tooltest.NoInheritedFDs()
	cmd := exec.Command(bin, args...)
	cmd.Dir = n.dir
	log, err := os.Create(filepath.Join(n.dir, fmt.Sprintf("redis-%d-%d.log", n.Port, time.Now().UnixNano())))
	if err != nil {
		n.t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("sentineltest: start redis-server %v: %v", args, err)
	}
	n.cmd = cmd
	if err := redistest.Await(n.Addr(), 10*time.Second); err != nil {
		n.t.Fatalf("sentineltest: %v", err)
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (n *Node) Kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// Cluster is a master, its replica and three Sentinels.
type Cluster struct {
	t         testing.TB
	Master    *Node // the first master; after a failover, the node that was it
	Replica   *Node // the first replica
	Sentinels []*Node
	Link      *Link // the replica's replication link to Master
}

// Start runs the cluster for t and waits until every Sentinel knows the
// replica and the two other Sentinels, so a failover can be elected.
func Start(t testing.TB) *Cluster {
	t.Helper()
	dir := t.TempDir()
	node := func(name string) *Node {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		n := &Node{t: t, Port: redistest.FreePort(t), dir: d}
		t.Cleanup(n.Kill)
		return n
	}
	c := &Cluster{t: t, Master: node("master"), Replica: node("replica")}
	c.Master.start(dataArgs(c.Master)...)
	c.Link = newLink(t, c.Master.Addr())
	c.Replica.start(append(dataArgs(c.Replica), "--replicaof", "127.0.0.1", strconv.Itoa(c.Link.Port))...)
	for i := range 3 {
		s := node(fmt.Sprintf("sentinel%d", i))
		conf := filepath.Join(s.dir, "sentinel.conf")
		body := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, s.Port, s.dir, MasterName, c.Master.Port, MasterName, DownAfter.Milliseconds(), MasterName, FailoverTimeout.Milliseconds(), MasterName)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s.start(conf, "--sentinel")
		c.Sentinels = append(c.Sentinels, s)
	}
	c.await(30*time.Second, "the replica in sync and every Sentinel to know the replica and both other Sentinels", func(ctx context.Context) (bool, string) {
		if st := c.ReplicaState(ctx, c.Replica); st != "online" {
			return false, "replica link " + st
		}
		for _, s := range c.Sentinels {
			cl := goredis.NewSentinelClient(&goredis.Options{Addr: s.Addr()})
			peers, err1 := cl.Sentinels(ctx, MasterName).Result()
			replicas, err2 := cl.Replicas(ctx, MasterName).Result()
			_ = cl.Close()
			if err1 != nil || err2 != nil || len(peers) < 2 || len(replicas) < 1 {
				return false, fmt.Sprintf("sentinel %d: %d peers, %d replicas (%v %v)", s.Port, len(peers), len(replicas), err1, err2)
			}
		}
		return true, ""
	})
	return c
}

func dataArgs(n *Node) []string {
	return []string{"--port", strconv.Itoa(n.Port), "--bind", "127.0.0.1", "--dir", n.dir,
		"--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"}
}

// URL is REDIS_URL for the cluster: its Sentinels and master name.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Sentinels))
	for i, s := range c.Sentinels {
		addrs[i] = s.Addr()
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/0?master=" + MasterName
}

// MasterAddr asks the Sentinels which address they hold for the master; ""
// when none answers.
func (c *Cluster) MasterAddr(ctx context.Context) string {
	for _, s := range c.Sentinels {
		if s.cmd == nil {
			continue
		}
		cl := goredis.NewSentinelClient(&goredis.Options{Addr: s.Addr(), MaxRetries: -1})
		a, err := cl.GetMasterAddrByName(ctx, MasterName).Result()
		_ = cl.Close()
		if err == nil && len(a) == 2 {
			return net.JoinHostPort(a[0], a[1])
		}
	}
	return ""
}

// ReplicaState is the replication link state ("online", "wait_bgsave", …)
// the current master of n reports for n, or why it cannot tell.
func (c *Cluster) ReplicaState(ctx context.Context, n *Node) string {
	cl := n.Client()
	defer cl.Close()
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return err.Error()
	}
	if f := infoField(info, "master_link_status"); f != "" {
		if f == "up" {
			return "online"
		}
		return "link " + f
	}
	return "not a replica"
}

// Offset is the replication offset node n reports: master_repl_offset of a
// master, slave_repl_offset of a replica.
func (c *Cluster) Offset(ctx context.Context, n *Node) (int64, error) {
	cl := n.Client()
	defer cl.Close()
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	key := "master_repl_offset"
	if infoField(info, "role") == "slave" {
		key = "slave_repl_offset"
	}
	return strconv.ParseInt(infoField(info, key), 10, 64)
}

// RestartAsReplicaOf starts n again, empty, as a replica of the node at
// addr: what an operator (or Kubernetes) does with a failed master once a
// replica has taken its place.
func (c *Cluster) RestartAsReplicaOf(n *Node, addr string) {
	c.t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.t.Fatal(err)
	}
	n.Kill()
	n.start(append(dataArgs(n), "--replicaof", host, port)...)
}

func (c *Cluster) await(timeout time.Duration, what string, cond func(context.Context) (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, state := cond(ctx)
		cancel()
		if ok {
			return
		}
		last = state
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("sentineltest: timed out after %s waiting for %s (last: %s)", timeout, what, last)
}

func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v
		}
	}
	return ""
}

// Link is a TCP proxy in the replica's replication link. Held, it keeps
// back what the master sends (the replica neither receives nor acknowledges
// it) while forwarding the replica's side; Cut then drops the held bytes and
// every connection, as the master's death would.
type Link struct {
	Port   int
	target string
	ln     net.Listener
	mu     sync.Mutex
	held   bool
	cut    bool
	kept   int
	conns  []net.Conn
}

func newLink(t testing.TB, target string) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{Port: ln.Addr().(*net.TCPAddr).Port, target: target, ln: ln}
	go l.accept()
	t.Cleanup(l.Cut)
	return l
}

func (l *Link) accept() {
	for {
		down, err := l.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", l.target, time.Second)
		l.mu.Lock()
		if err != nil || l.cut {
			l.mu.Unlock()
			_ = down.Close()
			if up != nil {
				_ = up.Close()
			}
			continue
		}
		l.conns = append(l.conns, down, up)
		l.mu.Unlock()
		go func() { _, _ = io.Copy(up, down); _ = up.Close() }()
		go l.forward(down, up)
	}
}

// forward copies the master's bytes to the replica unless the link is held.
func (l *Link) forward(down, up net.Conn) {
	defer down.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			l.mu.Lock()
			held := l.held
			if held {
				l.kept += n
			}
			l.mu.Unlock()
			if !held {
				if _, werr := down.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Hold stops passing the master's bytes to the replica.
func (l *Link) Hold() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = true
}

// Kept is how many bytes of the replication stream the link has held back.
func (l *Link) Kept() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kept
}

// Cut closes the link for good, dropping what it held.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return
	}
	l.cut = true
	_ = l.ln.Close()
	for _, c := range l.conns {
		_ = c.Close()
	}
}
