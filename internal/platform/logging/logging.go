// Package logging builds the zerolog logger and carries request-scoped
// fields (request_id, org_id, user_id, task_id) on the context.
package logging

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// New returns a logger at level, writing JSON or, for development, console text.
func New(w io.Writer, level, format, service string) zerolog.Logger {
	if w == nil {
		w = os.Stderr
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.Kitchen}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", service).Logger()
}

type requestIDKey struct{}

// WithRequestID stores the request ID on ctx and adds it to ctx's logger.
func WithRequestID(ctx context.Context, id string) context.Context {
	ctx = context.WithValue(ctx, requestIDKey{}, id)
	l := zerolog.Ctx(ctx).With().Str("request_id", id).Logger()
	return l.WithContext(ctx)
}

// RequestID returns the request ID carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

type routeKey struct{}

// WithRoute stores the request's route ("POST /api/v1/resources/:id") on
// ctx, for records that name what a request did (the support-access audit).
func WithRoute(ctx context.Context, route string) context.Context {
	return context.WithValue(ctx, routeKey{}, route)
}

// Route returns the route carried by ctx, or "".
func Route(ctx context.Context) string {
	r, _ := ctx.Value(routeKey{}).(string)
	return r
}
