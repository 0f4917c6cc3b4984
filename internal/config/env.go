// Package config reads each binary's settings from environment variables.
//
// Every binary builds its typed config from shared parts (Base, Postgres,
// Redis, Mail) with a Loader that records every missing or malformed variable,
// so a bad start names all of them in one message instead of one per restart.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Getenv looks a variable up; os.LookupEnv in production, a map in tests.
type Getenv func(key string) (string, bool)

// Loader reads variables and collects every problem it meets.
type Loader struct {
	get    Getenv
	errors map[string]string
}

// NewLoader returns a Loader reading from get, or from the process environment
// when get is nil.
func NewLoader(get Getenv) *Loader {
	if get == nil {
		get = os.LookupEnv
	}
	return &Loader{get: get, errors: map[string]string{}}
}

// MapEnv adapts a map to Getenv.
func MapEnv(m map[string]string) Getenv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func (l *Loader) lookup(key string) (string, bool) {
	v, ok := l.get(key)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (l *Loader) fail(key, format string, args ...any) {
	if _, seen := l.errors[key]; !seen {
		l.errors[key] = fmt.Sprintf(format, args...)
	}
}

// String returns the variable or def when it is unset.
func (l *Loader) String(key, def string) string {
	if v, ok := l.lookup(key); ok {
		return v
	}
	return def
}

// Required returns the variable and records it as missing when unset.
func (l *Loader) Required(key string) string {
	v, ok := l.lookup(key)
	if !ok {
		l.fail(key, "is required")
	}
	return v
}

// OneOf returns the variable (or def) and records it when it is not one of allowed.
func (l *Loader) OneOf(key, def string, allowed ...string) string {
	v := strings.ToLower(l.String(key, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.fail(key, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	return def
}

// Int returns the variable as an integer within [min, max].
func (l *Loader) Int(key string, def, min, max int) int {
	v, ok := l.lookup(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		l.fail(key, "must be a whole number from %d to %d, got %q", min, max, v)
		return def
	}
	return n
}

// Duration returns the variable parsed by time.ParseDuration, at least min.
func (l *Loader) Duration(key string, def, min time.Duration) time.Duration {
	v, ok := l.lookup(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < min {
		l.fail(key, "must be a duration such as 30s or 5m, at least %s, got %q", min, v)
		return def
	}
	return d
}

// URL returns the variable parsed as an absolute URL with one of schemes.
// required decides whether an unset variable is an error.
func (l *Loader) URL(key, def string, required bool, schemes ...string) string {
	v, ok := l.lookup(key)
	if !ok {
		if required && def == "" {
			l.fail(key, "is required")
		}
		return def
	}
	if err := checkURL(v, schemes); err != nil {
		l.fail(key, "%v", err)
	}
	return v
}

func checkURL(v string, schemes []string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("must be a URL such as %s://host:port, got %q", schemes[0], redact(v))
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return nil
		}
	}
	return fmt.Errorf("must use scheme %s, got %q", strings.Join(schemes, " or "), u.Scheme)
}

// Addr returns a listen address of the form host:port or :port.
func (l *Loader) Addr(key, def string) string {
	v := l.String(key, def)
	i := strings.LastIndex(v, ":")
	if i < 0 {
		l.fail(key, "must be host:port or :port, got %q", v)
		return def
	}
	if p, err := strconv.Atoi(v[i+1:]); err != nil || p < 0 || p > 65535 {
		l.fail(key, "must end in a port number, got %q", v)
		return def
	}
	return v
}

// List returns a comma-separated variable as a trimmed, non-empty list.
func (l *Loader) List(key string) []string {
	v, ok := l.lookup(key)
	if !ok {
		return nil
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Check records err against key when it is not nil; for checks a part does itself.
func (l *Loader) Check(key string, err error) {
	if err != nil {
		l.fail(key, "%v", err)
	}
}

// Err returns every recorded problem, one line per variable, sorted by name;
// nil when the configuration is valid.
func (l *Loader) Err() error {
	if len(l.errors) == 0 {
		return nil
	}
	keys := make([]string, 0, len(l.errors))
	for k := range l.errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		lines = append(lines, fmt.Sprintf("  %s %s", k, l.errors[k]))
	}
	return &Error{Vars: keys, msg: "invalid configuration:\n" + strings.Join(lines, "\n")}
}

// Error lists the variables that were missing or malformed.
type Error struct {
	Vars []string
	msg  string
}

func (e *Error) Error() string { return e.msg }

// IsConfigError reports whether err came from Loader.Err.
func IsConfigError(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}

// redact hides a password inside a URL so config errors never print secrets.
func redact(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		// No userinfo can still mean a password: an unescaped '?', '#' or
		// '/' in it makes url.Parse read the rest as query, fragment or path.
		return redactUnparsed(v)
	}
	if _, after, ok := strings.Cut(v, "://"); ok && strings.Count(after, "@") > 1 {
		// A second '@' means the password may hold "@/" or "@?" and go on
		// past what url.Parse took for userinfo: mask up to the last '@'.
		return redactUnparsed(v)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// redactUnparsed masks the password of a URL that url.Parse rejects (a bad
// port, a stray space) or reads without userinfo: exactly the values a
// config error quotes back. It masks from the first colon after "://" to the
// last '@', erring towards hiding too much.
func redactUnparsed(v string) string {
	i := strings.Index(v, "://")
	if i < 0 {
		return v
	}
	rest := v[i+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return v
	}
	user := rest[:at]
	c := strings.Index(user, ":")
	if c < 0 {
		return v
	}
	return v[:i+3] + user[:c+1] + "xxxxx" + rest[at:]
}

// Redact returns v with any URL password masked; for logging configs.
func Redact(v string) string { return redact(v) }
