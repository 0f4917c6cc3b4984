package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"
)

// Conn says how to reach Keel's Redis: one server (Addr), or the master that
// a set of Sentinels names (MasterName, SentinelAddrs), followed to the
// replica they promote when the master fails. Every client Keel opens, its
// own and Asynq's, is built from a Conn, so no part of a binary stays on a
// single node when the operator configured Sentinel.
type Conn struct {
	Addr string // host:port of the one server; empty with Sentinel

	MasterName    string   // the name the Sentinels monitor the master under
	SentinelAddrs []string // host:port of each Sentinel
	// SentinelPassword authenticates to the Sentinels themselves, when
	// they require it (REDIS_SENTINEL_PASSWORD).
	SentinelPassword string

	Username string // ACL user of the Redis servers, if any
	Password string // password of the Redis servers (master and replicas)
	DB       int
	TLS      *tls.Config // rediss:// only
}

// Sentinel reports whether c follows a master through Sentinel.
func (c Conn) Sentinel() bool { return c.MasterName != "" }

// String describes c without its password, for logs.
func (c Conn) String() string {
	if c.Sentinel() {
		return fmt.Sprintf("sentinel(master=%s sentinels=%s db=%d)", c.MasterName, strings.Join(c.SentinelAddrs, ","), c.DB)
	}
	return fmt.Sprintf("redis(%s db=%d)", c.Addr, c.DB)
}

const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
)

// ParseURL reads REDIS_URL:
//
//	redis://[[user]:password@]host[:port][/db]       one server
//	rediss://[[user]:password@]host[:port][/db]      one server over TLS
//	redis-sentinel://[[user]:password@]host1[:port],host2[:port],...[/db]?master=NAME
//
// In the Sentinel form the hosts are the Sentinels (port 26379 unless
// given), master is the name they monitor, and the user and password are
// those of the Redis servers, as in the other forms; a password of the
// Sentinels themselves is set apart (Conn.SentinelPassword). Its errors never
// quote the URL, so they cannot leak the password.
func ParseURL(raw string) (Conn, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Conn{}, errors.New("must be a URL such as redis://host:6379/0 or redis-sentinel://host1:26379,host2:26379,host3:26379/0?master=NAME")
	}
	switch scheme {
	case "redis", "rediss":
		return parseServer(scheme, raw)
	case "redis-sentinel":
		return parseSentinel(rest)
	default:
		return Conn{}, fmt.Errorf("must use scheme redis, rediss or redis-sentinel, got %q", scheme)
	}
}

func parseServer(scheme, raw string) (Conn, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Conn{}, errors.New("must be a URL such as redis://host:6379/0 (host, optional port and database number)")
	}
	if len(u.Query()) > 0 {
		return Conn{}, fmt.Errorf("takes no query parameters, got %s", queryNames(u.Query()))
	}
	c := Conn{Username: u.User.Username()}
	c.Password, _ = u.User.Password()
	if c.Addr, err = hostPort(u.Host, defaultPort); err != nil {
		return Conn{}, err
	}
	if c.DB, err = parseDB(u.Path); err != nil {
		return Conn{}, err
	}
	if scheme == "rediss" {
		c.TLS = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	return c, nil
}

// parseSentinel reads what follows "redis-sentinel://". url.Parse cannot
// take a host list (it reads the port after the last colon only), so the
// hosts are cut out first and the rest parsed around a placeholder host.
func parseSentinel(rest string) (Conn, error) {
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hosts := "", authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hosts = authority[:at+1], authority[at+1:]
	}
	u, err := url.Parse("redis-sentinel://" + userinfo + "sentinels" + tail)
	if err != nil {
		return Conn{}, errors.New("must be a URL such as redis-sentinel://host1:26379,host2:26379,host3:26379/0?master=NAME")
	}
	c := Conn{Username: u.User.Username()}
	c.Password, _ = u.User.Password()
	if c.DB, err = parseDB(u.Path); err != nil {
		return Conn{}, err
	}
	q := u.Query()
	c.MasterName = q.Get("master")
	q.Del("master")
	if len(q) > 0 {
		return Conn{}, fmt.Errorf("takes only the master parameter, got %s", queryNames(q))
	}
	if c.MasterName == "" {
		return Conn{}, errors.New("needs ?master=NAME, the name the Sentinels monitor the master under")
	}
	seen := map[string]bool{}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		a, err := hostPort(h, defaultSentinelPort)
		if err != nil {
			return Conn{}, fmt.Errorf("sentinel %w", err)
		}
		if !seen[a] {
			seen[a] = true
			c.SentinelAddrs = append(c.SentinelAddrs, a)
		}
	}
	if len(c.SentinelAddrs) == 0 {
		return Conn{}, errors.New("needs at least one Sentinel address, such as redis-sentinel://host1:26379,host2:26379,host3:26379/0?master=NAME")
	}
	return c, nil
}

// hostPort returns h as host:port, adding def when h names no port.
func hostPort(h, def string) (string, error) {
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port: a bare name or address (IPv6 in brackets).
		host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), def
		if host == "" || strings.ContainsAny(host, " /@[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
			return "", fmt.Errorf("address %q must be host or host:port", h)
		}
	}
	if host == "" {
		return "", fmt.Errorf("address %q has no host", h)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("address %q must end in a port number", h)
	}
	return net.JoinHostPort(host, port), nil
}

func parseDB(path string) (int, error) {
	p := strings.Trim(path, "/")
	if p == "" {
		return 0, nil
	}
	db, err := strconv.Atoi(p)
	if err != nil || db < 0 {
		return 0, fmt.Errorf("path must be a database number such as /0, got %q", "/"+p)
	}
	return db, nil
}

func queryNames(q url.Values) string {
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, strconv.Quote(k))
	}
	return strings.Join(names, ", ")
}

// New returns a go-redis client of c with short timeouts: callers on a
// request path (readiness, throttling, rate limits) must fail fast when
// Redis is down rather than hold the request. With Sentinel it is go-redis's
// failover client, which asks the Sentinels for the master, follows their
// switch-master announcements, and drops connections to a demoted master.
func New(c Conn) *goredis.Client {
	return open(c, time.Second, 1, 10)
}

// open builds the client of c with a read timeout, retries (-1: none) and
// pool size; dials and writes time out after a second.
func open(c Conn, read time.Duration, retries, pool int) *goredis.Client {
	if c.Sentinel() {
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName: c.MasterName, SentinelAddrs: c.SentinelAddrs, SentinelPassword: c.SentinelPassword,
			Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLS,
			DialTimeout: time.Second, ReadTimeout: read, WriteTimeout: time.Second,
			MaxRetries: retries, DialerRetries: 1, PoolSize: pool,
		})
	}
	return goredis.NewClient(&goredis.Options{
		Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLS,
		DialTimeout: time.Second, ReadTimeout: read, WriteTimeout: time.Second,
		MaxRetries: retries,
		// go-redis otherwise dials 5 times 100 ms apart per attempt, so a
		// probe of a stopped Redis took most of a second to say so.
		DialerRetries: 1,
		PoolSize:      pool,
	})
}

// Asynq returns c as Asynq's connection option, for its clients, servers,
// inspectors and Asynqmon: a RedisFailoverClientOpt with Sentinel, else a
// RedisClientOpt. Asynq keeps its own (longer) default timeouts.
func (c Conn) Asynq() asynq.RedisConnOpt {
	if c.Sentinel() {
		return asynq.RedisFailoverClientOpt{
			MasterName: c.MasterName, SentinelAddrs: c.SentinelAddrs, SentinelPassword: c.SentinelPassword,
			Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLS,
		}
	}
	return asynq.RedisClientOpt{Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLS}
}
