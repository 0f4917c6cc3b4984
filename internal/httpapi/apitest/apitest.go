// Package apitest checks real HTTP exchanges against Keel's OpenAPI
// document, so a handler cannot drift from what the document promises.
package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/keelhq/keel/internal/httpapi"
)

var (
	routerOnce sync.Once
	router     routers.Router
	routerErr  error
)

func init() {
	// kin-openapi decodes text/plain but not text/html; the docs page is
	// checked the same way, as an opaque string.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.RegisteredBodyDecoder("text/plain"))
}

// docRouter builds the router once; parallel tests share it.
func docRouter(t testing.TB) routers.Router {
	t.Helper()
	routerOnce.Do(func() {
		doc, err := httpapi.Document()
		if err != nil {
			routerErr = fmt.Errorf("document: %w", err)
			return
		}
		router, routerErr = gorillamux.NewRouter(doc)
	})
	if routerErr != nil {
		t.Fatalf("apitest: %v", routerErr)
	}
	return router
}

// Check fails t when the exchange (req with reqBody, and the recorded
// response) is not described by the OpenAPI document: an undocumented route,
// method or status, or a body that does not match its schema.
func Check(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	r := docRouter(t)
	req = req.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	if req.URL.Host == "" {
		req.URL.Host = req.Host
	}
	route, params, err := r.FindRoute(req)
	if err != nil {
		t.Fatalf("apitest: %s %s is not in the OpenAPI document: %v", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("apitest: %s %s → %d does not match the document: %v\nbody: %s", req.Method, req.URL.Path, status, err, body)
	}
}

// Do sends req to h, checks the exchange against the document and returns
// the recorded response.
func Do(t testing.TB, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	Check(t, req, reqBody, w.Code, w.Header(), w.Body.Bytes())
	return w
}
