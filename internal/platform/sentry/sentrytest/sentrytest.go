// Package sentrytest runs an HTTP server that takes the envelopes Sentry's
// SDK posts, so a test (in-process, or a binary started with SENTRY_DSN)
// can read what would have reached Sentry, over the SDK's real transport.
package sentrytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Server keeps every envelope posted to it.
type Server struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
}

// Start starts a Server, closed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// DSN is a Sentry DSN that sends to s (project 42).
func (s *Server) DSN() string {
	return strings.Replace(s.srv.URL, "http://", "http://publickey@", 1) + "/42"
}

// Envelopes returns every envelope received so far, in order.
func (s *Server) Envelopes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// Events returns every envelope received so far, joined by newlines: what
// a test searches for a tag or a secret.
func (s *Server) Events() string { return strings.Join(s.Envelopes(), "\n") }
