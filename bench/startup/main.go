// Command startup measures how fast api and worker become ready and how much
// memory they hold idle, for `make bench`. It builds the binaries, creates a
// scratch database with its own application role (dropped at the end),
// migrates it with keelctl, runs a private redis-server, and starts each
// binary -runs times. It prints one JSON object on stdout:
//
//	{"api":{"ready_ms":34,"rss_kb":30676},"worker":{"ready_ms":30,"rss_kb":20500}}
//
// ready_ms is the median time from exec to the first /readyz 200; rss_kb is
// the median VmRSS one second after readiness, with no traffic. Progress
// goes to stderr. The PostgreSQL superuser URL is KEEL_TEST_DATABASE_URL, as
// for the tests.
package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/proctest"
	"github.com/keelhq/keel/internal/platform/redistest"
)

// Result is one binary's measurement.
type Result struct {
	ReadyMS float64 `json:"ready_ms"`
	RSSKB   int     `json:"rss_kb"`
}

func main() {
	runs := flag.Int("runs", 5, "starts per binary; the median is reported")
	flag.Parse()
	if err := run(*runs); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

func run(runs int) (err error) {
	dir, err := os.MkdirTemp("", "keel-startup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintln(os.Stderr, "building binaries")
	if err := proctest.Build(dir); err != nil {
		return err
	}

	id := randHex(5)
	dbName, role, password := "keel_bench_"+id, "keel_bench_app_"+id, randHex(12)
	admin, err := sql.Open(postgres.DriverName, postgrestest.AdminURL())
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + postgres.QuoteIdentifier(dbName)); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	defer func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + postgres.QuoteIdentifier(dbName) + " WITH (FORCE)")
		_, _ = admin.Exec("DROP ROLE IF EXISTS " + postgres.QuoteIdentifier(role))
	}()
	ownerURL := postgrestest.URL(dbName, "", "")
	appURL := postgrestest.URL(dbName, role, password)

	redisPort, err := freePort()
	if err != nil {
		return err
	}
	redis := exec.Command("redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err := redis.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	defer func() { _ = redis.Process.Kill(); _ = redis.Wait() }()
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort)
	if err := redistest.Await(fmt.Sprintf("127.0.0.1:%d", redisPort), 10*time.Second); err != nil {
		return err
	}

	migrate, err := proctest.Exec(filepath.Join(dir, "keelctl"),
		proctest.Env("DATABASE_OWNER_URL", ownerURL, "DATABASE_URL", appURL), "migrate", "up")
	if err != nil {
		return err
	}
	if code, ok := migrate.Wait(time.Minute); !ok || code != 0 {
		migrate.Kill()
		return fmt.Errorf("keelctl migrate up: exit %d\n%s", code, migrate.Output())
	}

	results := map[string]Result{}
	for _, name := range []string{"api", "worker"} {
		var ready []float64
		var rss []int
		for range runs {
			r, kb, err := measure(filepath.Join(dir, name), appURL, redisURL)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			ready = append(ready, r)
			rss = append(rss, kb)
		}
		slices.Sort(ready)
		slices.Sort(rss)
		results[name] = Result{ReadyMS: ready[len(ready)/2], RSSKB: rss[len(rss)/2]}
		fmt.Fprintf(os.Stderr, "%s: ready ms %v, rss kB %v\n", name, ready, rss)
	}
	return json.NewEncoder(os.Stdout).Encode(results)
}

// measure starts one binary, times it to /readyz 200, reads its idle RSS a
// second later and stops it with SIGTERM, which must exit 0.
func measure(path, appURL, redisURL string) (readyMS float64, rssKB int, err error) {
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	addr, metricsAddr := "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+strconv.Itoa(port)
	if filepath.Base(path) == "api" {
		// The api serves metrics on a listener of its own.
		mport, err := freePort()
		if err != nil {
			return 0, 0, err
		}
		metricsAddr = "127.0.0.1:" + strconv.Itoa(mport)
	}
	p, err := proctest.Exec(path, proctest.Env("ENV", "production", "LOG_LEVEL", "warn",
		"DATABASE_URL", appURL, "REDIS_URL", redisURL, "HTTP_ADDR", addr, "METRICS_ADDR", metricsAddr,
		"JWT_SIGNING_KEY", randomKey(), "TOTP_ENCRYPTION_KEY", randomKey()))
	if err != nil {
		return 0, 0, err
	}
	defer p.Kill()
	d, err := p.Await("http://"+addr+"/readyz", 200, 10*time.Second)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(time.Second)
	if rssKB, err = p.RSSKB(); err != nil {
		return 0, 0, err
	}
	if code, ok := p.Terminate(10 * time.Second); !ok || code != 0 {
		return 0, 0, fmt.Errorf("exit %d (exited: %v) after SIGTERM\n%s", code, ok, p.Output())
	}
	return float64(d.Microseconds()) / 1000, rssKB, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomKey is a fresh base64 32-byte key, as `keelctl gen-keys` prints.
func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
