package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/idempotency"
	"github.com/keelhq/keel/internal/tenant"
)

// IdempotencyKeyHeader is the header a client sends to make a POST safe to
// retry; replays carry ReplayedHeader: true.
const (
	IdempotencyKeyHeader = "Idempotency-Key"
	ReplayedHeader       = "Idempotent-Replayed"
)

// replayedHeaders are the headers of the first response that a replay
// repeats; the others (X-Request-ID, rate-limit headers, security headers)
// belong to the request being answered now.
var replayedHeaders = []string{"Content-Type", "Location", "ETag", "Last-Modified"}

// secretResponseKey marks, on the Gin context, a response that carries a
// secret.
const secretResponseKey = "keel.secret_response"

// secret wraps the handler of a route whose success response carries a
// secret (tokens, an API key, a TOTP secret, recovery codes). Such a
// response is never stored at rest: its Idempotency-Key records only that
// the work was done, and a retry with the key answers 409
// idempotency_replay_unavailable instead of doing it again.
func secret(h gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(secretResponseKey, true)
		h(c)
	}
}

// bodyRecorder copies what the handler writes, for the stored response.
type bodyRecorder struct {
	gin.ResponseWriter
	buf bytes.Buffer
}

func (w *bodyRecorder) Write(b []byte) (int, error) {
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *bodyRecorder) WriteString(s string) (int, error) {
	w.buf.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}

// idempotent runs an authenticated POST under its Idempotency-Key, if it
// sent one, and calls the rest of the chain at most once per key:
//
//   - no header: the request runs as usual; a malformed one (empty,
//     repeated, longer than 255 or not printable ASCII) is 400
//     idempotency_key_invalid;
//   - the key is scoped to the caller's organization and credential (the
//     user of a session, or the API key); a caller without an organization
//     runs without it;
//   - a 2xx or 3xx response is stored for 24 hours with its status, body and
//     replayedHeaders, and the same request (method, path, query, body)
//     with the same key gets it again with Idempotent-Replayed: true;
//   - a 4xx or 5xx response is not stored and frees the key: the handlers
//     do their work in one transaction, so a refused or failed request
//     changed nothing, and the client may fix the cause (a plan upgrade, a
//     field) and retry with the same key;
//   - a response marked secret stores only that the work was done.
//
// The handler runs with a deadline of the key's lock (one minute), so the
// lock does not expire, letting a twin in, while the work may still commit.
func idempotent(svc *idempotency.Service, c *gin.Context, p *tenant.Principal) {
	vals := c.Request.Header.Values(IdempotencyKeyHeader)
	if len(vals) == 0 {
		c.Next()
		return
	}
	if len(vals) > 1 || !idempotency.ValidKey(vals[0]) {
		writeProblem(c, idempotency.ErrInvalidKey)
		return
	}
	if p.OrgID == uuid.Nil {
		c.Next()
		return
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		writeProblem(c, bodyError(err))
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	cred := p.UserID
	if !p.IsUser() {
		cred = p.APIKeyID
	}
	scope := idempotency.Scope{OrgID: p.OrgID, Credential: cred, Key: vals[0]}
	fp := idempotency.Fingerprint(c.Request.Method, c.Request.URL.Path, c.Request.URL.RawQuery, body)
	ctx := c.Request.Context()
	lock, replay, err := svc.Begin(ctx, scope, fp)
	if err != nil {
		writeProblem(c, err)
		return
	}
	if replay != nil {
		writeReplay(c, replay)
		return
	}
	// What follows the work must happen even when the client has gone.
	after := context.WithoutCancel(ctx)
	finished := false
	defer func() {
		if !finished { // the handler panicked: its transaction rolled back
			release(after, lock)
		}
	}()
	// A tenth of the lock is left for storing the answer.
	hctx, cancel := context.WithTimeout(ctx, svc.Hold()-svc.Hold()/10)
	defer cancel()
	c.Request = c.Request.WithContext(hctx)
	rec := &bodyRecorder{ResponseWriter: c.Writer}
	c.Writer = rec
	c.Next()
	c.Writer = rec.ResponseWriter
	finished = true
	status := rec.Status()
	if status < 200 || status >= 400 {
		release(after, lock)
		return
	}
	resp := idempotency.Response{Status: status, Unreplayable: c.GetBool(secretResponseKey)}
	if !resp.Unreplayable {
		resp.Body = rec.buf.Bytes()
		resp.Header = map[string]string{}
		for _, h := range replayedHeaders {
			if v := rec.Header().Get(h); v != "" {
				resp.Header[h] = v
			}
		}
	}
	if err := lock.Complete(after, resp); err != nil {
		// The work is done but its answer is not kept: the key stays locked
		// until the lock expires, and a retry after that runs the work again.
		zerolog.Ctx(ctx).Error().Err(err).Msg("idempotency: storing the response failed")
	}
}

func release(ctx context.Context, lock *idempotency.Lock) {
	if err := lock.Release(ctx); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("idempotency: releasing the key failed; it frees itself when its lock expires")
	}
}

// writeReplay answers with a stored response.
func writeReplay(c *gin.Context, r *idempotency.Response) {
	h := c.Writer.Header()
	for k, v := range r.Header {
		h.Set(k, v)
	}
	h.Set(ReplayedHeader, "true")
	c.Writer.WriteHeader(r.Status)
	c.Writer.WriteHeaderNow()
	if len(r.Body) > 0 && r.Status != http.StatusNoContent {
		_, _ = c.Writer.Write(r.Body)
	}
	c.Abort()
}
