package health

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"
	goredis "github.com/redis/go-redis/v9"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/redis"
)

// Stores is the readiness every binary reports: PostgreSQL and Redis each
// answer within a second, so /readyz turns 503 within about a second of
// either going away and 200 as soon as it is back.
func Stores(db *sqlx.DB, rdb *goredis.Client) *Checker {
	return &Checker{Timeout: time.Second, Checks: []Check{
		{Name: "postgres", Probe: func(ctx context.Context) error { return postgres.Ping(ctx, db) }},
		{Name: "redis", Probe: func(ctx context.Context) error { return redis.Ping(ctx, rdb) }},
	}}
}
