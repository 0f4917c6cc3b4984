// Package workertest runs Keel's real binaries (worker, scheduler) as child
// processes for end-to-end tests: built once per test binary, started with an
// environment, killed with SIGKILL or stopped with SIGTERM.
package workertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/tooltest"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
)

// Binary builds cmd/<name> once per test binary and returns its path.
func Binary(t testing.TB, name string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "keel-bin-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "github.com/keelhq/keel/cmd/"+name)
	if root, err := tooltest.RepoRoot(); err == nil {
		cmd.Dir = root
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/%s: %v\n%s", name, err, b)
	}
	built[name] = out
	return out
}

// Proc is a running binary.
type Proc struct {
	t       testing.TB
	Cmd     *exec.Cmd
	LogPath string
	Metrics string // http://127.0.0.1:PORT of METRICS_ADDR
	done    chan error
}

// Start runs bin with env (KEY=VALUE) added to a minimal environment; its
// stderr goes to a log file that is printed when the test fails.
func Start(t testing.TB, bin string, env ...string) *Proc {
	t.Helper()
	port := redistest.FreePort(t)
	f, err := os.CreateTemp(t.TempDir(), filepath.Base(bin)+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, LogPath: f.Name(), Metrics: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan error, 1)}
	p.Cmd = exec.Command(bin)
	p.Cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "ENV=test", "LOG_FORMAT=json", "LOG_LEVEL=info",
		fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", port)}, env...)
	p.Cmd.Stdout, p.Cmd.Stderr = f, f
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.done <- p.Cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.LogPath)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("%s log (tail):\n%s", filepath.Base(bin), b)
		}
	})
	return p
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	if p.Cmd.ProcessState != nil {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil
}

// Term sends SIGTERM and returns how long the process took to exit (failing
// the test after limit).
func (p *Proc) Term(limit time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			p.t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(limit):
		p.t.Fatalf("process did not exit within %s of SIGTERM", limit)
	}
	return time.Since(start)
}

// AddTasks inserts tasks into the outbox n per transaction, as the API does.
func AddTasks(t testing.TB, db *sqlx.DB, tasks []outbox.Task, perTx int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < len(tasks); i += perTx {
		end := min(i+perTx, len(tasks))
		err := postgres.InTx(context.Background(), db, [16]byte{}, func(tx *sqlx.Tx) error {
			for _, task := range tasks[i:end] {
				id, err := outbox.Add(context.Background(), tx, task)
				if err != nil {
					return err
				}
				ids = append(ids, id.String())
			}
			return nil
		})
		if err != nil {
			t.Fatalf("add tasks: %v", err)
		}
	}
	return ids
}

// WaitFor polls cond every 100 ms until it holds or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
}

// Count runs a count query on db; for WaitFor conditions.
func Count(t testing.TB, db *sqlx.DB, q string, args ...any) int {
	t.Helper()
	var n int
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.GetContext(ctx, &n, q, args...); err != nil {
		t.Fatalf("count %q: %v", q, err)
	}
	return n
}
