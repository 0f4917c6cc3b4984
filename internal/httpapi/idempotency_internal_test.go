package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/idempotency"
	"github.com/keelhq/keel/internal/idempotency/idempotencydb"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

type fixedClaims struct{ c *auth.Claims }

func (f fixedClaims) Verify(string) (*auth.Claims, error) { return f.c, nil }

// TestIdempotencyPanicFreesKey: a handler that panics (its transaction
// rolled back) frees its key at once, so the retry runs instead of waiting
// a minute for the lock to expire.
func TestIdempotencyPanicFreesKey(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	org := uuid.New()
	if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'o')`, org); err != nil {
		t.Fatal(err)
	}
	a := &Authenticator{
		Tokens:      fixedClaims{&auth.Claims{Org: org.String(), Role: "owner", RegisteredClaims: jwt.RegisteredClaims{Subject: uuid.NewString()}}},
		idempotency: &idempotency.Service{DB: db.App, Store: idempotencydb.Store{}, Wait: -1},
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(requestID(zerolog.Nop()), recovery())
	var calls atomic.Int32
	r.POST("/x", a.Required(), func(c *gin.Context) {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		c.JSON(http.StatusCreated, gin.H{"n": calls.Load()})
	})
	send := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/x", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set(IdempotencyKeyHeader, "p")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w
	}
	if w := send(); w.Code != http.StatusInternalServerError {
		t.Fatalf("panic: %d", w.Code)
	}
	if w := send(); w.Code != http.StatusCreated || w.Header().Get(ReplayedHeader) != "" {
		t.Fatalf("retry after a panic: %d %s", w.Code, w.Body.String())
	}
	if w := send(); w.Code != http.StatusCreated || w.Header().Get(ReplayedHeader) != "true" || w.Body.String() != `{"n":2}` {
		t.Fatalf("replay: %d %v %s", w.Code, w.Header(), w.Body.String())
	}
	if calls.Load() != 2 {
		t.Fatalf("handler ran %d times", calls.Load())
	}
}
