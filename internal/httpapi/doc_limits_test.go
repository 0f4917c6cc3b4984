package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/keelhq/keel/internal/httpapi"
)

// TestAuthenticatedOperationsDocumentLimits: every operation open to a
// bearer credential documents the rate limit's 429, and every such POST
// its Idempotency-Key parameter and the 400, 409 and 422 the key can
// answer. A capability's fragment that forgets them fails here.
func TestAuthenticatedOperationsDocumentLimits(t *testing.T) {
	t.Parallel()
	doc, err := httpapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	posts := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if !opUsesBearer(op) {
				continue
			}
			if op.Responses.Value("429") == nil {
				t.Errorf("%s %s: no 429 (rate_limited)", method, path)
			}
			if method != http.MethodPost {
				continue
			}
			posts++
			found := false
			for _, p := range op.Parameters {
				found = found || (p.Value != nil && p.Value.In == "header" && p.Value.Name == httpapi.IdempotencyKeyHeader)
			}
			if !found {
				t.Errorf("%s %s: no Idempotency-Key parameter (components/parameters/IdempotencyKey)", method, path)
			}
			for _, code := range []string{"400", "409", "422"} {
				if op.Responses.Value(code) == nil {
					t.Errorf("%s %s: no %s for the Idempotency-Key", method, path, code)
				}
			}
		}
	}
	if posts < 8 {
		t.Fatalf("only %d authenticated POSTs found", posts)
	}
}

func opUsesBearer(op *openapi3.Operation) bool {
	if op.Security == nil {
		return false
	}
	for _, req := range *op.Security {
		if _, ok := req["bearerAuth"]; ok {
			return true
		}
	}
	return false
}

// secretFields name response fields that hold a secret.
var secretFields = map[string]bool{"access_token": true, "refresh_token": true, "key": true, "secret": true, "recovery_codes": true}

// notStoredAnyway are POSTs whose documented answer may hold a secret only
// for anonymous callers, whose requests never reach the Idempotency-Key
// step.
var notStoredAnyway = map[string]string{
	"/api/v1/invitations/accept": "the session is returned only to an anonymous invitee",
}

// TestSecretRoutesAreMarked: every authenticated POST whose success answer
// (per the OpenAPI document) has a secret field is registered through
// secret(...), so its answer is never stored by the Idempotency-Key step.
// A new route that answers with a token or key fails here until marked.
func TestSecretRoutesAreMarked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	doc, err := httpapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	engine := e.h.(*gin.Engine)
	marked := 0
	for _, r := range engine.Routes() {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		path := openAPIPath(r.Path)
		item := doc.Paths.Value(path)
		if item == nil || item.Post == nil || !opUsesBearer(item.Post) {
			continue
		}
		holds := false
		for code, resp := range item.Post.Responses.Map() {
			if !strings.HasPrefix(code, "2") || resp.Value == nil {
				continue
			}
			for _, mt := range resp.Value.Content {
				holds = holds || hasSecretField(mt.Schema, 0)
			}
		}
		// The closure secret returns, inlined or not: httpapi.secret.func1
		// or httpapi.(*orgHandlers).register.secret.func13.
		isMarked := strings.Contains(r.Handler, ".secret.func")
		if isMarked {
			marked++
		}
		if holds && !isMarked && notStoredAnyway[path] == "" {
			t.Errorf("POST %s answers with a secret field but is not registered through secret(...)", path)
		}
	}
	if marked < 4 {
		t.Fatalf("only %d routes marked secret", marked)
	}
}

func hasSecretField(s *openapi3.SchemaRef, depth int) bool {
	if s == nil || s.Value == nil || depth > 8 {
		return false
	}
	v := s.Value
	for name, p := range v.Properties {
		if secretFields[name] || hasSecretField(p, depth+1) {
			return true
		}
	}
	for _, sub := range append(append(append(openapi3.SchemaRefs{}, v.AllOf...), v.OneOf...), v.AnyOf...) {
		if hasSecretField(sub, depth+1) {
			return true
		}
	}
	return hasSecretField(v.Items, depth+1)
}

func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}
