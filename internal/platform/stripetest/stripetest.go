// Package stripetest starts a private stripe-mock (Stripe's official mock of
// its API) on a free loopback port, for tests of Keel's outgoing Stripe
// calls, and signs webhook payloads with Stripe's real scheme.
//
// stripe-mock validates each request against Stripe's OpenAPI document and
// answers with canned objects: it checks what Keel sends, not state. Billing
// behaviour is tested with signed events (Sign).
package stripetest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/stripeapi"
	"github.com/keelhq/keel/internal/platform/tooltest"
)

// SecretKey is a test key stripe-mock accepts; WebhookSecret a signing
// secret for tests.
const (
	SecretKey     = "sk_test_keel"
	WebhookSecret = "whsec_keel_test_secret"
)

// Server is a running stripe-mock behind a recording proxy: URL is the
// proxy's, and Requests lists what reached it, so a test can check the
// idempotency key and parameters of each call Keel made.
type Server struct {
	URL     string // http://127.0.0.1:PORT of the proxy
	MockURL string // stripe-mock itself
	Client  *client.API

	mu       sync.Mutex
	requests []Request
}

// Request is one call that reached stripe-mock.
type Request struct {
	Method, Path   string
	IdempotencyKey string
	// Form is the request's parameters (Stripe's API is form-encoded:
	// "line_items[0][price]", "metadata[org_id]", ...).
	Form url.Values
}

// Requests returns the calls made so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// RequestsTo returns the calls made with method to path.
func (s *Server) RequestsTo(method, path string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// Reset forgets the calls recorded so far.
func (s *Server) Reset() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}

// Config is how application code reaches this server.
func (s *Server) Config() stripeapi.Config {
	return stripeapi.Config{SecretKey: SecretKey, APIBase: s.URL}
}

// Start runs stripe-mock for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := tooltest.Bin(t, "stripe-mock")
	port := redistest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	tooltest.NoInheritedFDs()
	// Without -https-addr it also listens on every interface.
	cmd := exec.Command(bin, "-http-addr", addr, "-https-addr", "127.0.0.1:0")
	logf, err := os.Create(filepath.Join(t.TempDir(), "stripe-mock.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("stripetest: start stripe-mock: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("stripetest: stripe-mock did not listen: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := &Server{MockURL: "http://" + addr}
	target, _ := url.Parse(s.MockURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		if r.Method == http.MethodGet {
			form = r.URL.Query()
		}
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path,
			IdempotencyKey: r.Header.Get("Idempotency-Key"), Form: form})
		s.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	s.URL = front.URL
	s.Client = stripeapi.New(s.Config())
	return s
}

// Sign returns the Stripe-Signature header of payload signed with secret at
// t, exactly as Stripe signs a webhook delivery.
func Sign(payload []byte, secret string, t time.Time) string {
	sig := webhook.ComputeSignature(t, payload, secret)
	return fmt.Sprintf("t=%d,v1=%x", t.Unix(), sig)
}
