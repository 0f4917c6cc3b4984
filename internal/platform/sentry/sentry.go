// Package sentry reports errors to Sentry when SENTRY_DSN is set and does
// nothing otherwise, so callers never check whether it is on.
package sentry

import (
	"context"
	"fmt"
	"time"

	gosentry "github.com/getsentry/sentry-go"
)

// Init configures the global Sentry client. With an empty dsn it does nothing.
func Init(dsn, env, release, service string) error {
	if dsn == "" {
		return nil
	}
	err := gosentry.Init(gosentry.ClientOptions{
		Dsn:         dsn,
		Environment: env,
		Release:     release,
		ServerName:  service,
	})
	if err != nil {
		return fmt.Errorf("sentry: %w", err)
	}
	return nil
}

// Flush waits up to d for queued events to be sent; call before exit.
func Flush(d time.Duration) { gosentry.Flush(d) }

// Capture reports err with tags; a no-op when Sentry is off.
func Capture(ctx context.Context, err error, tags map[string]string) {
	hub := gosentry.GetHubFromContext(ctx)
	if hub == nil {
		hub = gosentry.CurrentHub()
	}
	if hub.Client() == nil {
		return
	}
	hub.WithScope(func(s *gosentry.Scope) {
		for k, v := range tags {
			s.SetTag(k, v)
		}
		hub.CaptureException(err)
	})
}

// CapturePanic reports a recovered panic value; a no-op when Sentry is off.
func CapturePanic(ctx context.Context, v any, tags map[string]string) {
	Capture(ctx, fmt.Errorf("panic: %v", v), tags)
}
