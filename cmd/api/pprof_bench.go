//go:build benchpprof

package main

// Built with -tags benchpprof (never in a release), the api serves
// net/http/pprof on KEEL_PPROF_ADDR (default 127.0.0.1:6060), to profile
// it under the bench/ load scripts:
//
//	go build -tags benchpprof -o /tmp/api ./cmd/api
//	curl -o cpu.prof 'http://127.0.0.1:6060/debug/pprof/profile?seconds=10'

import (
	"net/http"
	_ "net/http/pprof" // registers on http.DefaultServeMux
	"os"
)

func init() {
	addr := os.Getenv("KEEL_PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
