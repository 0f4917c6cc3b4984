package config

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"
)

func apiEnv(over map[string]string) Getenv {
	m := map[string]string{
		"DATABASE_URL":        "postgres://app@127.0.0.1/keel",
		"REDIS_URL":           "redis://127.0.0.1:6379/0",
		"JWT_SIGNING_KEY":     base64.RawURLEncoding.EncodeToString(make([]byte, 32)),
		"TOTP_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(make([]byte, 32)),
	}
	for k, v := range over {
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return MapEnv(m)
}

func TestAuthConfig(t *testing.T) {
	c, err := LoadAPI(apiEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.JWTSigningKey) != 32 || len(c.TOTPEncryptionKey) != 32 || c.JWTPreviousSigningKey != nil || c.RefreshCookie {
		t.Fatalf("auth config %+v", c.Auth)
	}
	c, err = LoadAPI(apiEnv(map[string]string{"AUTH_REFRESH_COOKIE": "true",
		"JWT_PREVIOUS_SIGNING_KEY": base64.RawStdEncoding.EncodeToString(make([]byte, 48))}))
	if err != nil || !c.RefreshCookie || len(c.JWTPreviousSigningKey) != 48 {
		t.Fatalf("%+v %v", c.Auth, err)
	}

	cases := map[string]map[string]string{
		"JWT_SIGNING_KEY is required":                   {"JWT_SIGNING_KEY": ""},
		"JWT_SIGNING_KEY must decode to at least":       {"JWT_SIGNING_KEY": base64.StdEncoding.EncodeToString(make([]byte, 16))},
		"JWT_SIGNING_KEY must be base64":                {"JWT_SIGNING_KEY": "not base64 at all!"},
		"TOTP_ENCRYPTION_KEY is required":               {"TOTP_ENCRYPTION_KEY": ""},
		"TOTP_ENCRYPTION_KEY must decode to exactly 32": {"TOTP_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(make([]byte, 40))},
		"AUTH_REFRESH_COOKIE must be one of":            {"AUTH_REFRESH_COOKIE": "maybe"},
	}
	for want, over := range cases {
		_, err := LoadAPI(apiEnv(over))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: error %v, want it to contain %q", over, err, want)
		}
	}
	// Both keys missing are named in one message.
	_, err = LoadAPI(apiEnv(map[string]string{"JWT_SIGNING_KEY": "", "TOTP_ENCRYPTION_KEY": ""}))
	if err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") || !strings.Contains(err.Error(), "TOTP_ENCRYPTION_KEY") {
		t.Fatalf("error %v", err)
	}
}

func TestThrottleConfig(t *testing.T) {
	c, err := LoadAPI(apiEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustedProxies != nil || c.HashConcurrency != 0 || c.HashWait != 2*time.Second ||
		c.RegisterRate != (Rate{20, time.Hour}) || c.PasswordResetRate != (Rate{30, time.Hour}) || c.InvitationAcceptRate != (Rate{60, time.Hour}) {
		t.Fatalf("defaults: proxies %q, %+v", c.TrustedProxies, c.Auth)
	}
	c, err = LoadAPI(apiEnv(map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7 ,2001:db8::/32", "AUTH_HASH_CONCURRENCY": "3",
		"AUTH_HASH_WAIT": "500ms", "AUTH_RATE_REGISTER": "5/10m", "AUTH_RATE_PASSWORD_RESET": "100 / 24h", "AUTH_RATE_INVITATION_ACCEPT": "1/1s"}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.TrustedProxies, []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}) || c.HashConcurrency != 3 || c.HashWait != 500*time.Millisecond ||
		c.RegisterRate != (Rate{5, 10 * time.Minute}) || c.PasswordResetRate != (Rate{100, 24 * time.Hour}) || c.InvitationAcceptRate != (Rate{1, time.Second}) {
		t.Fatalf("read: proxies %q, %+v", c.TrustedProxies, c.Auth)
	}

	cases := map[string]map[string]string{
		"TRUSTED_PROXIES must be IP addresses or CIDRs":         {"TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"},
		"TRUSTED_PROXIES must not trust every address":          {"TRUSTED_PROXIES": "0.0.0.0/0"},
		"TRUSTED_PROXIES must not trust every address (\"::/0":  {"TRUSTED_PROXIES": "::/0"},
		"AUTH_HASH_CONCURRENCY must be a whole number":          {"AUTH_HASH_CONCURRENCY": "-1"},
		"AUTH_HASH_WAIT must be a duration":                     {"AUTH_HASH_WAIT": "1ms"},
		"AUTH_RATE_REGISTER must be requests/duration":          {"AUTH_RATE_REGISTER": "20"},
		"AUTH_RATE_PASSWORD_RESET must be requests/duration":    {"AUTH_RATE_PASSWORD_RESET": "0/1h"},
		"AUTH_RATE_INVITATION_ACCEPT must be requests/duration": {"AUTH_RATE_INVITATION_ACCEPT": "10/forever"},
	}
	for want, over := range cases {
		_, err := LoadAPI(apiEnv(over))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: error %v, want it to contain %q", over, err, want)
		}
	}
}
