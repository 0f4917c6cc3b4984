// Package workertest runs Keel's worker and scheduler binaries (built and
// started by proctest) for the fleet's end-to-end tests: killed with SIGKILL,
// stopped with SIGTERM, with their metrics listener on a free port, and with
// helpers to feed the outbox and wait for outcomes.
package workertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/proctest"
	"github.com/keelhq/keel/internal/platform/redistest"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binary returns the path of cmd/<name>, building every command once per
// test binary.
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "keel-bin-")
		if buildErr == nil {
			buildErr = proctest.Build(binDir)
		}
	})
	if buildErr != nil {
		t.Fatalf("workertest: %v", buildErr)
	}
	return filepath.Join(binDir, name)
}

// RemoveBinaries deletes what Binary built. Call it from TestMain after
// m.Run: the binaries outlive every single test, so no t.Cleanup can.
func RemoveBinaries() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

// Proc is a running binary.
type Proc struct {
	*proctest.Proc
	t       testing.TB
	Metrics string // http://127.0.0.1:PORT of METRICS_ADDR
}

// Start runs bin with env (KEY=VALUE pairs) over a minimal environment, with
// JSON logs and METRICS_ADDR on a free port. Its output is printed when the
// test fails.
func Start(t testing.TB, bin string, env ...string) *Proc {
	t.Helper()
	port := redistest.FreePort(t)
	full := append(proctest.Env("ENV", "test", "LOG_FORMAT", "json", "LOG_LEVEL", "info",
		"METRICS_ADDR", fmt.Sprintf("127.0.0.1:%d", port)), env...)
	p := &Proc{Proc: proctest.Start(t, bin, full), t: t, Metrics: fmt.Sprintf("http://127.0.0.1:%d", port)}
	t.Cleanup(func() {
		if t.Failed() {
			out := p.Output()
			if len(out) > 20000 {
				out = out[len(out)-20000:]
			}
			t.Logf("%s output (tail):\n%s", p.Name, out)
		}
	})
	return p
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	p.t.Helper()
	_ = syscall.Kill(p.Pid(), syscall.SIGKILL)
	if _, ok := p.Wait(10 * time.Second); !ok {
		p.t.Fatalf("workertest: %s survived SIGKILL", p.Name)
	}
}

// Term sends SIGTERM and returns how long the process took to exit, failing
// the test when it exits non-zero or not within limit.
func (p *Proc) Term(limit time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	code, ok := p.Terminate(limit)
	if !ok {
		p.t.Fatalf("workertest: %s did not exit within %s of SIGTERM", p.Name, limit)
	}
	if code != 0 {
		p.t.Errorf("workertest: %s exited %d after SIGTERM", p.Name, code)
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
