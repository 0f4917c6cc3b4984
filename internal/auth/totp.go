package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: RFC 6238 defaults that every authenticator app supports.
const (
	totpPeriod = 30
	totpSkew   = 1 // accept the previous and next 30 s step for clock drift
)

// SecretBox encrypts TOTP secrets at rest with AES-256-GCM, so a database
// dump alone does not yield second factors.
type SecretBox struct{ aead cipher.AEAD }

// NewSecretBox takes the 32-byte TOTP_ENCRYPTION_KEY.
func NewSecretBox(key []byte) (*SecretBox, error) {
	if len(key) != 32 {
		return nil, errors.New("TOTP encryption key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &SecretBox{aead: aead}, nil
}

// Seal encrypts plain; the user ID is bound as additional data so a
// ciphertext copied to another user's row does not decrypt.
func (b *SecretBox) Seal(plain, userID []byte) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return b.aead.Seal(nonce, nonce, plain, userID)
}

// Open decrypts what Seal produced.
func (b *SecretBox) Open(sealed, userID []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed secret too short")
	}
	return b.aead.Open(nil, sealed[:n], sealed[n:], userID)
}

// NewTOTPKey generates a secret and its otpauth:// URL for account.
func NewTOTPKey(issuer, account string) (secret, url string, err error) {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: totpPeriod,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return "", "", err
	}
	return k.Secret(), k.URL(), nil
}

// MatchTOTP checks code against secret at now and returns the time step it
// matched, so the caller can refuse a step at or before the last one used.
// It returns 0 when nothing matched.
func MatchTOTP(secret, code string, now time.Time) int64 {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return 0
	}
	step := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		s := step + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0), totp.ValidateOpts{
			Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && want == code {
			return s
		}
	}
	return 0
}

// TOTPCode returns the code for secret at t; for tests and seed data.
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// recoveryAlphabet avoids look-alike characters.
var recoveryEncoding = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// NewRecoveryCodes returns n one-time codes (80 bits each, shown as
// xxxx-xxxx-xxxx-xxxx) and their stored hashes.
func NewRecoveryCodes(n int) (codes []string, hashes [][]byte) {
	for range n {
		b := make([]byte, 10)
		_, _ = rand.Read(b)
		s := recoveryEncoding.EncodeToString(b)
		code := fmt.Sprintf("%s-%s-%s-%s", s[0:4], s[4:8], s[8:12], s[12:16])
		codes = append(codes, code)
		hashes = append(hashes, HashRecoveryCode(code))
	}
	return codes, hashes
}

// HashRecoveryCode normalises a typed recovery code (case, dashes, spaces)
// and hashes it; 80 random bits need no slow hash.
func HashRecoveryCode(code string) []byte {
	c := strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	h := sha256.Sum256([]byte("keel-recovery:" + c))
	return h[:]
}
