// Command baregin is the honest baseline the API benchmarks measure Keel
// against: plain Gin (no middleware, no authentication) and sqlx, as the same
// application role and with the same pool size as cmd/api.
//
// GET /me reads one user row by primary key and writes it as JSON: the
// baseline of GET /api/v1/me (bench/wrk-me.sh) and of GET /api/v1/resources
// (bench/wrk-resources.sh). What Keel adds on top is the difference.
//
// POST /webhook reads the request body (capped like the API's webhook) and
// answers 200: the baseline of POST /api/v1/stripe/webhook
// (bench/wrk-webhook.sh), so what Keel adds (signature, insert, outbox row)
// is the difference.
//
// POST /resources, served when ORG_ID is given, binds the JSON body and
// inserts one resources row with one INSERT … RETURNING (autocommit), under
// the same Row Level Security policy, whose tenant is set once per
// connection: the baseline of POST /api/v1/resources.
//
// GET /resources, served when ORG_ID is given, is the same read as GET
// /api/v1/resources?sort=-created_at&limit=20 done by the simplest code:
// one sqlx Select of the tenant's 21 newest live rows under the same Row
// Level Security policy (tenant set per connection), the page and its
// next cursor as JSON through encoding/json; no authentication, no caller
// check, no middleware. GET /resources/prepared is the same through a
// statement prepared once (database/sql prepares it on each pooled
// connection), so PostgreSQL does not plan the query on every request: the
// one change a careful author of the bare code would make.
// bench/wrk-resources.sh measures both beside the one-row read and Keel,
// so a run shows what the read itself costs against the one-row baseline
// and what Keel adds to it.
//
//	baregin ADDR DATABASE_URL USER_ID [ORG_ID]
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "baregin:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 4 && len(os.Args) != 5 {
		return fmt.Errorf("usage: baregin ADDR DATABASE_URL USER_ID [ORG_ID]")
	}
	addr, dbURL := os.Args[1], os.Args[2]
	userID, err := uuid.Parse(os.Args[3])
	if err != nil {
		return fmt.Errorf("user id: %w", err)
	}
	var orgID uuid.UUID
	if len(os.Args) == 5 {
		if orgID, err = uuid.Parse(os.Args[4]); err != nil {
			return fmt.Errorf("org id: %w", err)
		}
		// The tenant as a startup parameter of every connection: the
		// simplest way to write under RLS in one statement, with no
		// transaction around it.
		u, err := url.Parse(dbURL)
		if err != nil {
			return fmt.Errorf("database url: %w", err)
		}
		q := u.Query()
		q.Set("app.org_id", orgID.String())
		u.RawQuery = q.Encode()
		dbURL = u.String()
	}
	// The pool is cmd/api's: DATABASE_MAX_OPEN_CONNS and
	// DATABASE_MAX_IDLE_CONNS, with the same defaults.
	open := envInt("DATABASE_MAX_OPEN_CONNS", 20)
	db, err := postgres.Open(dbURL, postgres.Options{MaxOpenConns: open,
		MaxIdleConns: envInt("DATABASE_MAX_IDLE_CONNS", open), ConnMaxLifetime: 30 * time.Minute})
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
	r.POST("/webhook", func(c *gin.Context) {
		if _, err := io.ReadAll(io.LimitReader(c.Request.Body, 512<<10)); err != nil {
			c.String(http.StatusBadRequest, err.Error())
			return
		}
		c.JSON(http.StatusOK, gin.H{"received": true})
	})
	if orgID != uuid.Nil {
		r.POST("/resources", createResource(db, orgID, userID))
		list, err := listResources(db, orgID)
		if err != nil {
			return err
		}
		r.GET("/resources", list.handle(false))
		r.GET("/resources/prepared", list.handle(true))
	}
	return http.ListenAndServe(addr, r)
}

// createResource is the bare single-row INSERT: bind, insert, answer 201.
func createResource(db *sqlx.DB, orgID, userID uuid.UUID) gin.HandlerFunc {
	type input struct {
		Name        string          `json:"name" binding:"required"`
		Description string          `json:"description"`
		Status      string          `json:"status"`
		Attributes  json.RawMessage `json:"attributes"`
	}
	const q = `INSERT INTO resources (org_id, id, name, description, status, attributes, created_by_user_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		RETURNING id, name, description, status, attributes, version, created_at, updated_at`
	return func(c *gin.Context) {
		var in input
		if err := c.ShouldBindJSON(&in); err != nil {
			c.String(http.StatusBadRequest, err.Error())
			return
		}
		if in.Status == "" {
			in.Status = "active"
		}
		if len(in.Attributes) == 0 {
			in.Attributes = json.RawMessage(`{}`)
		}
		// The creator columns are not returned, so they stay nil and out
		// of the JSON.
		var out bareResource
		if err := db.GetContext(c.Request.Context(), &out, q, orgID, postgres.NewID(), in.Name, in.Description, in.Status, []byte(in.Attributes), userID); err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		c.JSON(http.StatusCreated, out)
	}
}

// bareResource is a resource as the API's list writes it; the bare create
// answers with it too.
type bareResource struct {
	ID                uuid.UUID       `db:"id" json:"id"`
	Name              string          `db:"name" json:"name"`
	Description       string          `db:"description" json:"description"`
	Status            string          `db:"status" json:"status"`
	Attributes        json.RawMessage `db:"attributes" json:"attributes"`
	Version           int64           `db:"version" json:"version"`
	CreatedByUserID   *uuid.UUID      `db:"created_by_user_id" json:"created_by_user_id,omitempty"`
	CreatedByAPIKeyID *uuid.UUID      `db:"created_by_api_key_id" json:"created_by_api_key_id,omitempty"`
	CreatedAt         time.Time       `db:"created_at" json:"created_at"`
	UpdatedAt         time.Time       `db:"updated_at" json:"updated_at"`
}

// bareList is the bare list: one page of the 20 newest live resources and
// the cursor of the next, as the API answers it.
type bareList struct {
	db    *sqlx.DB
	stmt  *sqlx.Stmt
	orgID uuid.UUID
}

// bareQuery asks for one row more than a page, to learn whether a next
// page exists, as the API does.
const (
	bareLimit = 20
	bareQuery = `SELECT id, name, description, status, attributes, version, created_by_user_id, created_by_api_key_id,
		created_at, updated_at FROM resources WHERE org_id = $1 AND deleted_at IS NULL
		ORDER BY created_at DESC, id DESC LIMIT 21`
)

func listResources(db *sqlx.DB, orgID uuid.UUID) (*bareList, error) {
	stmt, err := db.Preparex(bareQuery)
	if err != nil {
		return nil, fmt.Errorf("prepare the list: %w", err)
	}
	return &bareList{db: db, stmt: stmt, orgID: orgID}, nil
}

func (l *bareList) handle(prepared bool) gin.HandlerFunc {
	type cursor struct {
		Sort string    `json:"o"`
		At   time.Time `json:"t"`
		ID   uuid.UUID `json:"i"`
	}
	return func(c *gin.Context) {
		var (
			rows []bareResource
			err  error
		)
		if prepared {
			err = l.stmt.SelectContext(c.Request.Context(), &rows, l.orgID)
		} else {
			err = l.db.SelectContext(c.Request.Context(), &rows, bareQuery, l.orgID)
		}
		if err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		next := ""
		if len(rows) > bareLimit {
			rows = rows[:bareLimit]
			last := rows[bareLimit-1]
			b, err := json.Marshal(cursor{Sort: "-created_at", At: last.CreatedAt, ID: last.ID})
			if err != nil {
				c.String(http.StatusInternalServerError, err.Error())
				return
			}
			next = base64.RawURLEncoding.EncodeToString(b)
		}
		c.JSON(http.StatusOK, gin.H{"data": rows, "next_cursor": next})
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
