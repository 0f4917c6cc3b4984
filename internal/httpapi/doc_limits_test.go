package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

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
			if !bearer(op) {
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

func bearer(op *openapi3.Operation) bool {
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
