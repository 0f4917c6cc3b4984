package config_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/platform/redis"
)

// Every binary that reaches Redis reads the Sentinel form of REDIS_URL into
// the same Conn, and both kinds of client come from it.
func TestRedisSentinelURL(t *testing.T) {
	env := with(valid(),
		"REDIS_URL", "redis-sentinel://:srv-secret@10.0.0.1:26379,10.0.0.2,[fd00::3]:26380/2?master=keel",
		"REDIS_SENTINEL_PASSWORD", "sentinel-secret")
	for name, load := range map[string]func() (config.Redis, error){
		"api":       func() (config.Redis, error) { c, err := config.LoadAPI(config.MapEnv(env)); return c.Redis, err },
		"worker":    func() (config.Redis, error) { c, err := config.LoadWorker(config.MapEnv(env)); return c.Redis, err },
		"scheduler": func() (config.Redis, error) { c, err := config.LoadScheduler(config.MapEnv(env)); return c.Redis, err },
		"keelctl": func() (config.Redis, error) {
			c, err := config.LoadCtl(config.MapEnv(env))
			if err != nil {
				return config.Redis{}, err
			}
			d, err := c.Doctor()
			return d.Redis, err
		},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := load()
			if err != nil {
				t.Fatal(err)
			}
			c := r.Conn
			if !c.Sentinel() || c.MasterName != "keel" || c.Addr != "" || c.DB != 2 ||
				c.Password != "srv-secret" || c.SentinelPassword != "sentinel-secret" ||
				!slices.Equal(c.SentinelAddrs, []string{"10.0.0.1:26379", "10.0.0.2:26379", "[fd00::3]:26380"}) {
				t.Fatalf("conn = %+v", c)
			}
			opt, ok := c.Asynq().(asynq.RedisFailoverClientOpt)
			if !ok || opt.MasterName != "keel" || opt.Password != "srv-secret" || opt.SentinelPassword != "sentinel-secret" ||
				opt.DB != 2 || len(opt.SentinelAddrs) != 3 {
				t.Fatalf("asynq opt = %#v", c.Asynq())
			}
			if s := c.String(); strings.Contains(s, "secret") || !strings.Contains(s, "master=keel") {
				t.Errorf("String() = %q", s)
			}
			rdb := redis.New(c)
			defer rdb.Close()
			if rdb.Options().DB != 2 {
				t.Errorf("go-redis client db = %d", rdb.Options().DB)
			}
		})
	}
}

func TestRedisSingleServerURL(t *testing.T) {
	for url, want := range map[string]string{
		"redis://cache.example.com":       "cache.example.com:6379",
		"redis://cache.example.com:6380/": "cache.example.com:6380",
		"rediss://u:pw@[::1]:6390/1":      "[::1]:6390",
	} {
		c, err := config.LoadWorker(config.MapEnv(with(valid(), "REDIS_URL", url)))
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if c.Redis.Conn.Addr != want || c.Redis.Conn.Sentinel() {
			t.Errorf("%s: conn %+v, want addr %s", url, c.Redis.Conn, want)
		}
		if _, ok := c.Redis.Conn.Asynq().(asynq.RedisClientOpt); !ok {
			t.Errorf("%s: asynq opt %T", url, c.Redis.Conn.Asynq())
		}
		if strings.HasPrefix(url, "rediss") && c.Redis.Conn.TLS == nil {
			t.Errorf("%s: no TLS", url)
		}
	}
}

func TestRedisBadValues(t *testing.T) {
	cases := []struct{ key, value, want string }{
		{"REDIS_URL", "redis-sentinel://10.0.0.1:26379,10.0.0.2:26379", "needs ?master=NAME"},
		{"REDIS_URL", "redis-sentinel://10.0.0.1:26379/0?master=", "needs ?master=NAME"},
		{"REDIS_URL", "redis-sentinel:///0?master=keel", "at least one Sentinel address"},
		{"REDIS_URL", "redis-sentinel://10.0.0.1:26379,10.0.0.2:notaport/0?master=keel", `sentinel address "10.0.0.2:notaport" must end in a port number`},
		{"REDIS_URL", "redis-sentinel://10.0.0.1:26379,10.0.0.2:70000/0?master=keel", "must end in a port number"},
		{"REDIS_URL", "redis-sentinel://10.0.0.1:26379/zero?master=keel", "database number"},
		{"REDIS_URL", "redis-sentinel://10.0.0.1:26379/0?master=keel&sentinel=x", `takes only the master parameter, got "sentinel"`},
		{"REDIS_URL", "redis://10.0.0.1:6379/0?master=keel", "takes no query parameters"},
		{"REDIS_URL", "rediss-sentinel://10.0.0.1:26379/0?master=keel", "must use scheme redis, rediss or redis-sentinel"},
		{"REDIS_URL", "redis://:6379/0", `address ":6379" has no host`},
		{"REDIS_SENTINEL_PASSWORD", "pw", "only used with a redis-sentinel:// REDIS_URL"},
		{"REDIS_MIN_REPLICA_ACKS", "-1", "REDIS_MIN_REPLICA_ACKS must be a whole number from 0 to 16"},
		{"REDIS_MIN_REPLICA_ACKS", "one", "must be a whole number"},
		{"REDIS_REPLICA_ACK_TIMEOUT", "1ms", "at least 10ms"},
	}
	for _, tc := range cases {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			_, err := config.LoadWorker(config.MapEnv(with(valid(), tc.key, tc.value)))
			wantErr(t, tc.key+"="+tc.value, err, []string{tc.key}, tc.want)
		})
	}
	// The Sentinel form's password is masked like the others'.
	_, err := config.LoadWorker(config.MapEnv(with(valid(), "REDIS_URL", "redis-sentinel://:hunter2hunter2@h1:26379,h2:x/0?master=keel")))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks or is missing: %v", err)
	}
}

func TestReplicaAcks(t *testing.T) {
	w, err := config.LoadWorker(config.MapEnv(valid()))
	if err != nil {
		t.Fatal(err)
	}
	if w.ReplicaAcks != (config.ReplicaAcks{Acks: 0, Timeout: time.Second}) {
		t.Errorf("default = %+v", w.ReplicaAcks)
	}
	w, err = config.LoadWorker(config.MapEnv(with(valid(), "REDIS_MIN_REPLICA_ACKS", "1", "REDIS_REPLICA_ACK_TIMEOUT", "250ms")))
	if err != nil {
		t.Fatal(err)
	}
	if w.ReplicaAcks != (config.ReplicaAcks{Acks: 1, Timeout: 250 * time.Millisecond}) {
		t.Errorf("set = %+v", w.ReplicaAcks)
	}
}
