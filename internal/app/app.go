// Package app wires Keel's API: each capability's service to its store,
// and the services to the router. cmd/api and the HTTP tests both build the
// API here, so a test runs the object graph production runs.
package app

import (
	"errors"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"
	goredis "github.com/redis/go-redis/v9"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/org/orgdb"
)

// Keys are the API's secrets (see internal/config.Auth).
type Keys struct {
	JWTSigning         []byte
	JWTPreviousSigning []byte // optional, during rotation
	TOTPEncryption     []byte
}

// APIDeps is what NewAPI wires together.
type APIDeps struct {
	DB    *sqlx.DB
	Redis *goredis.Client
	Keys  Keys
	// BaseURL is APP_BASE_URL: links in emails start with it.
	BaseURL string
	// Params are argon2id's; zero means auth.OWASPParams.
	Params auth.PasswordParams
	// Now is the services' clock; nil means time.Now.
	Now func() time.Time
	// HTTP is the router's infrastructure (logger, metrics, health, CORS,
	// body limit, cookie mode, queue UI); NewAPI adds the services.
	HTTP httpapi.Deps
}

// API is the wired API: its handler and the services behind it.
type API struct {
	Handler http.Handler
	Auth    *auth.Service
	Orgs    *org.Service
}

// NewAPI builds the services and the router.
func NewAPI(d APIDeps) (*API, error) {
	if d.DB == nil || d.Redis == nil {
		return nil, errors.New("app: NewAPI needs DB and Redis")
	}
	issuer, err := auth.NewIssuer(d.Keys.JWTSigning, d.Keys.JWTPreviousSigning)
	if err != nil {
		return nil, err
	}
	box, err := auth.NewSecretBox(d.Keys.TOTPEncryption)
	if err != nil {
		return nil, err
	}
	params := d.Params
	if params == (auth.PasswordParams{}) {
		params = auth.OWASPParams
	}
	orgs := &org.Service{DB: d.DB, Store: orgdb.Store{}, BaseURL: d.BaseURL, Now: d.Now}
	accounts := &auth.Service{DB: d.DB, Users: authdb.Store{}, Orgs: orgs, Tokens: issuer, Box: box,
		Throttle: auth.NewThrottle(d.Redis), Params: params, BaseURL: d.BaseURL, Product: "Keel", Now: d.Now}
	h := d.HTTP
	h.Auth, h.Orgs = accounts, orgs
	handler, err := httpapi.New(h)
	if err != nil {
		return nil, err
	}
	return &API{Handler: handler, Auth: accounts, Orgs: orgs}, nil
}
