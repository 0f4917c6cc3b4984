package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/sentry"
)

// validRequestID accepts what proxies and clients commonly send, bounded, so
// a hostile header cannot inject into logs.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:\-]{8,128}$`)

// requestID takes a sane incoming X-Request-ID or makes one, puts it and a
// request logger on the context, and echoes it. First in the chain, so every
// later log line and problem document carries it.
func requestID(log zerolog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-ID")
		if !validRequestID.MatchString(id) {
			b := make([]byte, 16)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		ctx := log.WithContext(c.Request.Context())
		ctx = logging.WithRequestID(ctx, id)
		c.Request = c.Request.WithContext(ctx)
		c.Header("X-Request-ID", id)
		c.Next()
	}
}

// accessLog logs every request once with its route, status and latency, and
// records the metrics. It runs outside recovery so a panic's 500 is counted.
func accessLog(m *metrics.HTTP) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		d := time.Since(start)
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		if m != nil {
			m.Observe(route, c.Request.Method, strconv.Itoa(status), d)
		}
		l := zerolog.Ctx(c.Request.Context())
		ev := l.Info()
		if status >= 500 {
			ev = l.Error()
		} else if status >= 400 {
			ev = l.Warn()
		}
		if route == "/healthz" || route == "/readyz" {
			ev = l.Debug()
		}
		ev.Str("method", c.Request.Method).Str("route", route).Str("path", c.Request.URL.Path).
			Int("status", status).Dur("latency", d).Int("bytes", c.Writer.Size()).
			Str("ip", c.ClientIP()).Msg("request")
	}
}

// recovery turns a panic into a problem+json 500 and reports it to Sentry.
func recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				zerolog.Ctx(c.Request.Context()).Error().Interface("panic", v).Bytes("stack", stack()).Msg("panic")
				sentry.CapturePanic(c.Request.Context(), v, errorTags(c))
				if !c.Writer.Written() {
					c.Writer.WriteHeader(0) // reset Gin's pending status
					writeProblem(c, apperr.New(apperr.Internal, "internal_error", "Something went wrong on our side. It has been reported; please try again."))
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

// securityHeaders sets the headers every response carries. HTML pages set
// their own stricter CSP; HSTS only in production, where TLS is certain.
func securityHeaders(production bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if production {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		c.Next()
	}
}

// cors answers preflights and sets CORS headers for allow-listed origins
// only; other origins get no CORS headers, so browsers refuse the response.
func cors(allowed []string) gin.HandlerFunc {
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		ok := origin != "" && slices.Contains(allowed, origin)
		// Every answer depends on Origin, refused ones too: without Vary a
		// shared cache could hand a refused origin's answer (no CORS headers)
		// to an allowed origin, or the reverse.
		c.Writer.Header().Add("Vary", "Origin")
		if ok {
			h := c.Writer.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Expose-Headers", "X-Request-ID, ETag, Retry-After, Location, Idempotent-Replayed, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset")
		}
		if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
			if ok {
				h := c.Writer.Header()
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, If-Match, X-Request-ID, X-Requested-With")
				h.Set("Access-Control-Max-Age", "600")
			}
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Next()
	}
}

// bodyLimit caps request bodies; reading past the cap fails, which the JSON
// binder reports as a 413 problem.
func bodyLimit(max int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > max {
			writeProblem(c, apperr.New(apperr.TooLarge, "body_too_large", "The request body is larger than "+strconv.FormatInt(max, 10)+" bytes."))
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, max)
		c.Next()
	}
}

// notFound answers unmatched routes and methods with problem+json.
func notFound(c *gin.Context) {
	writeProblem(c, apperr.New(apperr.NotFound, "not_found", "No such endpoint: "+c.Request.Method+" "+c.Request.URL.Path))
}

func stack() []byte { return debug.Stack() }
