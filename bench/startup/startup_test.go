//go:build bench

package startup

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/proctest"
	"github.com/keelhq/keel/internal/platform/redistest"
)

// Result is one binary's measurement.
type Result struct {
	ReadyMS float64 `json:"ready_ms"`
	RSSKB   int     `json:"rss_kb"`
}

func TestStartup(t *testing.T) {
	runs := 5
	if v, err := strconv.Atoi(os.Getenv("KEEL_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	dir := t.TempDir()
	if err := proctest.Build(dir); err != nil {
		t.Fatal(err)
	}
	db := postgrestest.NewEmpty(t)
	rs := redistest.Start(t)
	ctlEnv := proctest.Env("DATABASE_OWNER_URL", db.OwnerURL, "DATABASE_URL", db.AppURL)
	if code, out, _ := proctest.Run(t, time.Minute, filepath.Join(dir, "keelctl"), ctlEnv, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %d\n%s", code, out)
	}

	results := map[string]Result{}
	for _, name := range []string{"api", "worker"} {
		var ready []float64
		var rss []int
		for range runs {
			addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
			env := proctest.Env("ENV", "production", "LOG_LEVEL", "warn", "DATABASE_URL", db.AppURL, "REDIS_URL", rs.URL,
				"HTTP_ADDR", addr, "METRICS_ADDR", addr)
			p := proctest.Start(t, filepath.Join(dir, name), env)
			d := p.WaitStatus(t, "http://"+addr+"/readyz", 200, 10*time.Second)
			time.Sleep(time.Second)
			kb, err := p.RSSKB()
			if err != nil {
				t.Fatal(err)
			}
			if code, ok := p.Terminate(10 * time.Second); !ok || code != 0 {
				t.Fatalf("%s: exit %d (%v) after SIGTERM\n%s", name, code, ok, p.Output())
			}
			ready = append(ready, float64(d.Microseconds())/1000)
			rss = append(rss, kb)
		}
		slices.Sort(ready)
		slices.Sort(rss)
		results[name] = Result{ReadyMS: ready[len(ready)/2], RSSKB: rss[len(rss)/2]}
		t.Logf("%s: ready ms %v, rss kB %v", name, ready, rss)
	}
	b, err := json.Marshal(results)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(string(b))
	if out := os.Getenv("KEEL_BENCH_OUT"); out != "" {
		if !filepath.IsAbs(out) {
			// go test runs in the package folder; a relative path means the repo root.
			out = filepath.Join("..", "..", out)
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", strings.TrimPrefix(out, "../../"))
	}
}
