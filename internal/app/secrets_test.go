package app_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/org"
)

// Domain types that hold secrets (hashes, sealed TOTP secrets) cannot leak
// them through an encoder by accident, whatever a handler does with them.
func TestSecretsDoNotMarshal(t *testing.T) {
	const secret = "SECRET-MATERIAL"
	for name, v := range map[string]any{
		"auth.User":         auth.User{Email: "a@b.test", PasswordHash: secret, TOTPSecret: []byte(secret), TOTPLastStep: 987654321},
		"auth.RefreshToken": auth.RefreshToken{TokenHash: []byte(secret)},
		"auth.EmailToken":   auth.EmailToken{TokenHash: []byte(secret)},
		"org.Invitation":    org.Invitation{Email: "a@b.test", TokenHash: []byte(secret)},
		"org.APIKey":        org.APIKey{Name: "ci", SecretHash: []byte(secret)},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, leak := range []string{secret, "U0VDUkVU", "987654321", "Hash", "TOTPSecret"} {
			if strings.Contains(s, leak) {
				t.Errorf("%s marshals %q: %s", name, leak, s)
			}
		}
	}
}
