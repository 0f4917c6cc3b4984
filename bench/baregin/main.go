// Command baregin is the honest baseline bench/wrk-me.sh measures
// authenticated GET /api/v1/me against: plain Gin (no middleware) whose
// handler reads one user row by primary key through sqlx, as the same
// application role and with the same pool size as cmd/api, and writes it as
// JSON. What Keel adds on top (JWT check, middleware chain, memberships,
// suspension check) is the difference between the two.
//
//	baregin ADDR DATABASE_URL USER_ID
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/platform/postgres"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "baregin:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 4 {
		return fmt.Errorf("usage: baregin ADDR DATABASE_URL USER_ID")
	}
	addr, url := os.Args[1], os.Args[2]
	userID, err := uuid.Parse(os.Args[3])
	if err != nil {
		return fmt.Errorf("user id: %w", err)
	}
	// The pool is cmd/api's: DATABASE_MAX_OPEN_CONNS and
	// DATABASE_MAX_IDLE_CONNS, with the same defaults.
	db, err := postgres.Open(url, postgres.Options{MaxOpenConns: envInt("DATABASE_MAX_OPEN_CONNS", 20),
		MaxIdleConns: envInt("DATABASE_MAX_IDLE_CONNS", 10), ConnMaxLifetime: 30 * time.Minute})
	if err != nil {
		return err
	}
	defer db.Close()
	type user struct {
		ID        uuid.UUID `db:"id" json:"id"`
		Email     string    `db:"email" json:"email"`
		Name      string    `db:"name" json:"name"`
		CreatedAt time.Time `db:"created_at" json:"created_at"`
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/me", func(c *gin.Context) {
		var u user
		if err := db.GetContext(c.Request.Context(), &u, `SELECT id, email, name, created_at FROM users WHERE id = $1`, userID); err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		c.JSON(http.StatusOK, u)
	})
	return http.ListenAndServe(addr, r)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
