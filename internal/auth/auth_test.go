package auth_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/tenant"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

func TestPasswordHashing(t *testing.T) {
	t.Parallel()
	h, err := auth.HashPassword("correct horse battery staple", auth.OWASPParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry OWASP parameters", h)
	}
	h2, _ := auth.HashPassword("correct horse battery staple", auth.OWASPParams)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"correct horse battery staple": true, "correct horse battery stapl": false, "": false} {
		if ok, err := auth.VerifyPassword(pw, h); err != nil || ok != want {
			t.Errorf("verify %q = %v, %v; want %v", pw, ok, err, want)
		}
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=x$AA$AA", "plain"} {
		if _, err := auth.VerifyPassword("x", bad); err == nil {
			t.Errorf("verify against %q did not fail", bad)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"short":                        "validation_failed",
		strings.Repeat("a", 129):       "validation_failed",
		"passwordpassword":             "password_too_weak",
		"PassWord123456":               "password_too_weak",
		"qwertyuiop123":                "password_too_weak",
		"zzzzzzzzzzzzzz":               "password_too_weak",
		"abcabcabcabcabc":              "password_too_weak",
		"correct horse battery staple": "",
		"日本語のパスワードはとても長いです":       "",
		"bad\xffutf8 long enough": "validation_failed",
	}
	for pw, want := range cases {
		err := auth.CheckPassword("password", pw)
		got := ""
		if e, ok := apperr.As(err); ok {
			got = e.Code
		} else if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("CheckPassword(%q) = %q, want %q", pw, got, want)
		}
	}
}

func TestAccessTokens(t *testing.T) {
	t.Parallel()
	oldKey, newKey := bytes.Repeat([]byte("o"), 32), bytes.Repeat([]byte("n"), 32)
	const iss = "https://app.keel.test"
	old, _ := auth.NewIssuer(oldKey, nil, iss)
	rotated, _ := auth.NewIssuer(newKey, oldKey, iss)
	fresh, _ := auth.NewIssuer(newKey, nil, iss)
	user, org, sid := uuid.New(), uuid.New(), uuid.New()
	tok, err := old.Issue(user, org, tenant.RoleAdmin, sid)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rotated.Verify(tok)
	if err != nil || c.Subject != user.String() || c.Org != org.String() || c.Role != "admin" || c.ID == "" || c.Session != sid.String() {
		t.Fatalf("rotated issuer rejected a token of the previous key: %+v %v", c, err)
	}
	if _, err := fresh.Verify(tok); err == nil {
		t.Fatal("a token of a retired key was accepted")
	}
	if _, err := auth.NewIssuer([]byte("short"), nil, iss); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := auth.NewIssuer(newKey, nil, ""); err == nil {
		t.Fatal("empty issuer accepted")
	}
	// Another deployment sharing the key (staging, a second region) signs
	// tokens this one must not take.
	staging, _ := auth.NewIssuer(newKey, nil, "https://staging.keel.test")
	other, err := staging.Issue(user, org, tenant.RoleOwner, sid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Verify(other); err == nil {
		t.Fatal("a token of another issuer, signed with the same key, was accepted")
	}
	// alg=none, another HMAC size, wrong audience and expiry are all refused.
	claims := jwt.MapClaims{"sub": user.String(), "org": org.String(), "role": "owner", "aud": auth.Audience, "iss": iss,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512 := jwt.NewWithClaims(jwt.SigningMethodHS512, claims)
	hs512.Header["kid"] = strings.Split(mustHeaderKid(t, fresh), ".")[0]
	s512, _ := hs512.SignedString(newKey)
	wrongAud := jwt.MapClaims{}
	for k, v := range claims {
		wrongAud[k] = v
	}
	wrongAud["aud"] = "someone-else"
	expired := jwt.MapClaims{}
	for k, v := range claims {
		expired[k] = v
	}
	expired["exp"] = time.Now().Add(-time.Minute).Unix()
	badSid := jwt.MapClaims{}
	for k, v := range claims {
		badSid[k] = v
	}
	badSid["sid"] = "not-a-session"
	wrongIss, noIss := jwt.MapClaims{}, jwt.MapClaims{}
	for k, v := range claims {
		wrongIss[k], noIss[k] = v, v
	}
	wrongIss["iss"] = "https://evil.example"
	delete(noIss, "iss")
	sign := func(c jwt.MapClaims) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		tk.Header["kid"] = mustHeaderKid(t, fresh)
		s, _ := tk.SignedString(newKey)
		return s
	}
	if _, err := fresh.Verify(sign(claims)); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
	for name, bad := range map[string]string{"none": none, "HS512": s512, "aud": sign(wrongAud), "expired": sign(expired), "sid": sign(badSid),
		"iss": sign(wrongIss), "no iss": sign(noIss)} {
		if _, err := fresh.Verify(bad); err == nil {
			t.Errorf("%s token accepted", name)
		}
	}
}

// mustHeaderKid returns the kid an issuer puts on its tokens.
func mustHeaderKid(t *testing.T, i *auth.Issuer) string {
	tok, err := i.Issue(uuid.New(), uuid.New(), "member", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Header["kid"].(string)
}

func TestSecretBoxAndTOTP(t *testing.T) {
	t.Parallel()
	box, err := auth.NewSecretBox(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	a, b := uuid.New(), uuid.New()
	sealed := box.Seal([]byte("SECRET"), a[:])
	if got, err := box.Open(sealed, a[:]); err != nil || string(got) != "SECRET" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := box.Open(sealed, b[:]); err == nil {
		t.Fatal("a secret sealed for one user opened for another")
	}
	secret, url, err := auth.NewTOTPKey("Keel", "a@example.com")
	if err != nil || !strings.HasPrefix(url, "otpauth://totp/") {
		t.Fatalf("key %q %v", url, err)
	}
	now := time.Unix(1_800_000_000, 0)
	code, _ := auth.TOTPCode(secret, now)
	if auth.MatchTOTP(secret, code, now) != now.Unix()/30 {
		t.Fatal("current code not matched to its step")
	}
	if auth.MatchTOTP(secret, code, now.Add(30*time.Second)) == 0 {
		t.Fatal("previous step not accepted for clock drift")
	}
	if auth.MatchTOTP(secret, code, now.Add(2*time.Minute)) != 0 {
		t.Fatal("a code two minutes old was accepted")
	}
	codes, hashes := auth.NewRecoveryCodes(10)
	if len(codes) != 10 || !bytes.Equal(auth.HashRecoveryCode(strings.ToUpper(strings.ReplaceAll(codes[0], "-", " "))), hashes[0]) {
		t.Fatal("recovery code normalisation")
	}
}
