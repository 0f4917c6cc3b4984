package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// NewOpaqueToken returns a 256-bit random token, URL-safe, for links and
// refresh tokens, and the SHA-256 digest that is stored in its place.
func NewOpaqueToken() (token string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken is the stored form of a presented opaque token. A fast hash is
// enough: the token carries 256 bits of entropy, so there is nothing to
// brute-force, and lookups stay one indexed query.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
