// Package redis opens go-redis clients from REDIS_URL for the parts of Keel
// that use Redis directly (readiness, throttling), beside Asynq's own pool.
package redis

import (
	"context"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// New parses url (redis://[:password@]host:port/db) and returns a client
// with short timeouts: callers on a request path must fail fast when Redis
// is down rather than hold the request.
func New(url string) (*goredis.Client, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.DialTimeout = time.Second
	opt.ReadTimeout = time.Second
	opt.WriteTimeout = time.Second
	opt.MaxRetries = 1
	// go-redis otherwise dials 5 times 100 ms apart per attempt, so a probe
	// of a stopped Redis took most of a second to say so.
	opt.DialerRetries = 1
	opt.PoolSize = 10
	return goredis.NewClient(opt), nil
}

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
