package config

import (
	"encoding/base64"
	"strings"
	"testing"
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
