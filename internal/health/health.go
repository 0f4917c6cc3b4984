// Package health answers liveness and readiness: /healthz says the process
// runs, /readyz says its dependencies answer right now.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Check is one dependency probe; it must respect ctx's deadline.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// Checker runs every check in parallel, each bounded by Timeout.
type Checker struct {
	Checks  []Check
	Timeout time.Duration
	// Log receives why a check failed when the request's context carries
	// no logger; nil logs nothing.
	Log *zerolog.Logger
}

// Result is one check's outcome. Error stays in the logs: a dependency's
// error names hosts, ports and roles, which /readyz must not tell anyone
// who can reach it.
type Result struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"-"`
}

// Run probes every dependency and reports whether all answered.
func (c *Checker) Run(ctx context.Context) ([]Result, bool) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := make([]Result, len(c.Checks))
	var wg sync.WaitGroup
	for i, ch := range c.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = Result{Name: ch.Name, OK: true}
			if err := ch.Probe(ctx); err != nil {
				res[i] = Result{Name: ch.Name, Error: err.Error()}
			}
		}()
	}
	wg.Wait()
	ok := true
	for _, r := range res {
		ok = ok && r.OK
	}
	return res, ok
}

// Live answers 200 while the process serves.
func Live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Ready answers 200 when every check passes and 503 naming the failed
// checks (not their errors, which it logs).
func (c *Checker) Ready(w http.ResponseWriter, r *http.Request) {
	res, ok := c.Run(r.Context())
	if !ok {
		log := zerolog.Ctx(r.Context())
		if log.GetLevel() == zerolog.Disabled && c.Log != nil {
			log = c.Log
		}
		for _, x := range res {
			if !x.OK {
				log.Warn().Str("check", x.Name).Str("error", x.Error).Msg("not ready")
			}
		}
	}
	body := struct {
		Status string   `json:"status"`
		Checks []Result `json:"checks"`
	}{Status: "ok", Checks: res}
	code := http.StatusOK
	if !ok {
		body.Status = "unavailable"
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// Mux serves /healthz, /readyz and /metrics on a binary's metrics listener
// (METRICS_ADDR), never on the api's public port.
func Mux(c *Checker, metrics http.Handler) *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", Live)
	m.HandleFunc("GET /readyz", c.Ready)
	m.Handle("GET /metrics", metrics)
	return m
}
