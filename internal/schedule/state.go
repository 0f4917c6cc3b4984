package schedule

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisState keeps each entry's latest slot in one Redis hash, shared by
// every scheduler replica.
type RedisState struct {
	Client redis.UniversalClient
	Key    string // default "keel:schedule:last"
}

func (r *RedisState) key() string {
	if r.Key == "" {
		return "keel:schedule:last"
	}
	return r.Key
}

// Last implements State.
func (r *RedisState) Last(ctx context.Context, entry string) (time.Time, error) {
	v, err := r.Client.HGet(ctx, r.key(), entry).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, nil
	}
	return time.Unix(sec, 0).UTC(), nil
}

// advanceScript sets the field only forward, so a slow replica cannot move
// an entry back to an older slot.
var advanceScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or tonumber(cur) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1`)

// Advance implements State.
func (r *RedisState) Advance(ctx context.Context, entry string, slot time.Time) error {
	return advanceScript.Run(ctx, r.Client, []string{r.key()}, entry, slot.Unix()).Err()
}
