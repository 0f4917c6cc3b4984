// Command registerload sends N registrations to a running api all at once,
// each from its own client address (X-Forwarded-For, for an api that trusts
// the loopback as its proxy), and prints one JSON line: how many were
// created, refused as busy (503 server_busy) or otherwise answered, their
// latencies, and the api's resident memory before and at its peak
// (VmRSS and VmHWM of -pid). bench/register-memory.sh runs it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "registerload:", err)
		os.Exit(1)
	}
}

type result struct {
	N             int            `json:"n"`
	Created       int            `json:"created"`
	Busy          int            `json:"busy_503"`
	BusyShare     float64        `json:"busy_share"`
	Other         map[string]int `json:"other,omitempty"`
	P50ms         int64          `json:"p50_ms"`
	P99ms         int64          `json:"p99_ms"`
	MaxMs         int64          `json:"max_ms"`
	IdleRSSMiB    float64        `json:"idle_rss_mib"`
	PeakRSSMiB    float64        `json:"peak_rss_mib"`
	WallSeconds   float64        `json:"wall_s"`
	RetryAfterSet bool           `json:"retry_after_on_every_503"`
}

func run() error {
	url := flag.String("url", "http://127.0.0.1:8080", "the api's base URL")
	n := flag.Int("n", 200, "registrations sent at once")
	pid := flag.Int("pid", 0, "the api's process ID, for its memory")
	run := flag.String("run", strconv.FormatInt(time.Now().UnixNano(), 36), "makes the emails unique across runs")
	flag.Parse()
	if *pid == 0 {
		return fmt.Errorf("-pid is required")
	}
	idle, _, err := memory(*pid)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: *n}}
	type answer struct {
		status int
		code   string
		retry  bool
		d      time.Duration
		err    error
	}
	answers := make([]answer, *n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]string{"email": fmt.Sprintf("load-%s-%d@example.com", *run, i),
				"password": "a long benchmark passphrase " + strconv.Itoa(i), "name": "Load " + strconv.Itoa(i)})
			req, _ := http.NewRequest("POST", *url+"/api/v1/auth/register", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", i/62500%250, i/250%250, i%250+1))
			<-start
			t0 := time.Now()
			resp, err := client.Do(req)
			a := answer{d: time.Since(t0), err: err}
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var p struct {
					Code string `json:"code"`
				}
				_ = json.Unmarshal(b, &p)
				a.status, a.code, a.retry = resp.StatusCode, p.Code, resp.Header.Get("Retry-After") != ""
			}
			answers[i] = a
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	_, peak, err := memory(*pid)
	if err != nil {
		return err
	}
	r := result{N: *n, Other: map[string]int{}, IdleRSSMiB: idle, PeakRSSMiB: peak, WallSeconds: wall.Seconds(), RetryAfterSet: true}
	var ds []time.Duration
	for _, a := range answers {
		ds = append(ds, a.d)
		switch {
		case a.err != nil:
			r.Other["error: "+a.err.Error()]++
		case a.status == 202:
			r.Created++
		case a.status == 503 && a.code == "server_busy":
			r.Busy++
			r.RetryAfterSet = r.RetryAfterSet && a.retry
		default:
			r.Other[strconv.Itoa(a.status)+" "+a.code]++
		}
	}
	slices.Sort(ds)
	r.BusyShare = float64(r.Busy) / float64(r.N)
	r.P50ms, r.P99ms, r.MaxMs = ds[len(ds)/2].Milliseconds(), ds[len(ds)*99/100].Milliseconds(), ds[len(ds)-1].Milliseconds()
	return json.NewEncoder(os.Stdout).Encode(r)
}

// memory returns the process's resident set now and at its peak, in MiB.
func memory(pid int) (rss, hwm float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm, nil
}
