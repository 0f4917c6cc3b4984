// Package redis reads REDIS_URL (one server or Sentinel) and opens every
// Redis client Keel uses from it: go-redis clients for the parts that use
// Redis directly (readiness, throttling, rate limits, the scheduler's
// state, the outbox relay's replica fence) and Asynq's connection option.
package redis

import (
	"context"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Ping checks the server answers within ctx.
func Ping(ctx context.Context, c *goredis.Client) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// libraryLogger hands go-redis's own messages (a failed dial, a pool
// notice) to zerolog, so they are JSON lines with the service's fields like
// every other, not bare text on stderr that log pipelines cannot parse.
type libraryLogger struct{ log zerolog.Logger }

// Printf implements go-redis's logger.
func (l libraryLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Warn().Str("component", "go-redis").Msg(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// RouteLibraryLogs sends go-redis's messages, for every client in the
// process (Asynq's included), to log. go-redis keeps one logger per
// process, so each binary's main calls this once, before opening clients.
func RouteLibraryLogs(log zerolog.Logger) {
	goredis.SetLogger(libraryLogger{log: log})
}
