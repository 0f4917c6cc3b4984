// Package queueui serves Asynqmon, the queue monitor UI and its JSON API,
// with a Content-Security-Policy fitted to its page. It is a package of its
// own so only the api binary carries the UI's embedded assets.
package queueui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
)

// Monitor is Asynqmon (UI and JSON API) mounted at a root path.
type Monitor struct {
	h   *asynqmon.HTTPHandler
	csp string
}

// inlineScript finds the inline <script> bodies of Asynqmon's index page.
var inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// NewMonitor serves Asynqmon for opt at root (e.g. "/admin/queues"), with
// every task payload and result shown through Redact. Its
// index page carries inline scripts (the root path flags and webpack's
// runtime); rather than allowing any inline script, the CSP lists the SHA-256
// of each as rendered, so only Asynqmon's own code runs. Styles must allow
// 'unsafe-inline' (Material UI injects them at run time) and Google Fonts,
// which the page links.
func NewMonitor(opt asynq.RedisConnOpt, root string) (*Monitor, error) {
	redact := func(_ string, b []byte) string { return Redact(b) }
	h := asynqmon.New(asynqmon.Options{RootPath: root, RedisConnOpt: opt,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(redact), ResultFormatter: asynqmon.ResultFormatterFunc(redact)})
	page := &bufferWriter{header: http.Header{}}
	req, err := http.NewRequest(http.MethodGet, h.RootPath()+"/", nil)
	if err != nil {
		return nil, err
	}
	h.ServeHTTP(page, req)
	if page.status != 0 && page.status != http.StatusOK {
		return nil, fmt.Errorf("asynqmon index: status %d", page.status)
	}
	hashes := []string{}
	for _, m := range inlineScript.FindAllSubmatch(page.body.Bytes(), -1) {
		sum := sha256.Sum256(m[1])
		hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	csp := strings.Join([]string{
		"default-src 'self'",
		"script-src 'self' " + strings.Join(hashes, " "),
		"style-src 'self' 'unsafe-inline' https://fonts.googleapis.com",
		"font-src 'self' https://fonts.gstatic.com",
		"img-src 'self' data:",
		"connect-src 'self'",
		"manifest-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
	return &Monitor{h: h, csp: csp}, nil
}

// ServeHTTP implements http.Handler.
func (m *Monitor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", m.csp)
	w.Header().Set("Cache-Control", "no-store")
	m.h.ServeHTTP(w, r)
}

// CSP returns the Content-Security-Policy the monitor sends.
func (m *Monitor) CSP() string { return m.csp }

// Close releases the monitor's Redis connections.
func (m *Monitor) Close() error { return m.h.Close() }

// RegisterQueues makes Redis list queues before any task was enqueued to
// them, so Asynqmon shows every queue of the project from the start. Asynq
// records queue names in the set asynq:queues on first enqueue; this adds
// them to the same set.
func RegisterQueues(ctx context.Context, rdb redis.UniversalClient, queues []string) error {
	args := make([]any, len(queues))
	for i, q := range queues {
		args[i] = q
	}
	return rdb.SAdd(ctx, "asynq:queues", args...).Err()
}

type bufferWriter struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func (b *bufferWriter) Header() http.Header         { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferWriter) WriteHeader(s int)           { b.status = s }
