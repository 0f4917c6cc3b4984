// Package proctest builds Keel's binaries and runs them as real processes
// for end-to-end tests and the startup benchmark: each process gets only the
// environment the test gives it, its output is kept for failure messages,
// and it is killed when the test ends if it still runs.
package proctest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/tooltest"
)

// Binaries are the commands under cmd/.
var Binaries = []string{"api", "worker", "scheduler", "keelctl"}

// Build compiles every command under cmd/ into dir.
func Build(dir string) error {
	root, err := tooltest.RepoRoot()
	if err != nil {
		return fmt.Errorf("proctest: repo root: %w", err)
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("proctest: go build: %v\n%s", err, out)
	}
	return nil
}

// Env returns a minimal environment (PATH, HOME, TMPDIR) plus kv pairs, so
// a process never picks up the developer's DATABASE_URL or REDIS_URL.
func Env(kv ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	for i := 0; i+1 < len(kv); i += 2 {
		env = append(env, kv[i]+"="+kv[i+1])
	}
	return env
}

// Proc is a running (or finished) process.
type Proc struct {
	Name    string
	Started time.Time
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	err     error
}

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

// Exec runs path with env and args, stdout and stderr captured together.
// The caller stops it (Terminate or Kill); tests use Start instead.
func Exec(path string, env []string, args ...string) (*Proc, error) {
	p := &Proc{Name: filepath.Base(path), out: &syncBuffer{}, done: make(chan struct{})}
	tooltest.NoInheritedFDs()
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = env
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.Started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("proctest: start %s: %w", p.Name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// Start is Exec for a test: it fails t when the process cannot start and
// kills the process when t ends if it still runs.
func Start(t testing.TB, path string, env []string, args ...string) *Proc {
	t.Helper()
	p, err := Exec(path, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

// Kill stops the process at once if it still runs and waits for it.
func (p *Proc) Kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Pid is the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output is everything the process wrote so far.
func (p *Proc) Output() string { return p.out.String() }

// Wait waits up to timeout for the process to exit and returns its exit
// code, or -1 and false when it is still running.
func (p *Proc) Wait(timeout time.Duration) (int, bool) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, false
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), true
	}
	if p.err != nil {
		return -1, true
	}
	return 0, true
}

// Terminate sends SIGTERM and waits up to timeout for the exit code.
func (p *Proc) Terminate(timeout time.Duration) (int, bool) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Run runs path to completion (at most timeout) and returns its exit code
// and output; a process still running at timeout fails t.
func Run(t testing.TB, timeout time.Duration, path string, env []string, args ...string) (int, string, time.Duration) {
	t.Helper()
	p := Start(t, path, env, args...)
	code, ok := p.Wait(timeout)
	if !ok {
		t.Fatalf("proctest: %s %s still runs after %s:\n%s", p.Name, strings.Join(args, " "), timeout, p.Output())
	}
	return code, p.Output(), time.Since(p.Started)
}

// Get fetches url and returns the status and body; status 0 when nothing
// answered.
func Get(url string) (int, string) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// Await polls url every few milliseconds until it answers want, and
// returns when that was, measured from the process's start. It fails when
// the process exits or timeout passes first.
func (p *Proc) Await(url string, want int, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		code, body := Get(url)
		if code == want {
			return time.Since(p.Started), nil
		}
		select {
		case <-p.done:
			return 0, fmt.Errorf("proctest: %s exited before %s answered %d:\n%s", p.Name, url, want, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("proctest: %s answered %d (%s), not %d, within %s:\n%s", url, code, body, want, timeout, p.Output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitStatus is Await failing t.
func (p *Proc) WaitStatus(t testing.TB, url string, want int, timeout time.Duration) time.Duration {
	t.Helper()
	d, err := p.Await(url, want, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// RSSKB reads the process's resident set size, in KiB, from /proc.
func (p *Proc) RSSKB() (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
		}
	}
	return 0, errors.New("no VmRSS line")
}
