package httpapi_test

import (
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/keelhq/keel/internal/httpapi"
)

// TestIdentityRoutesDocumented: every identity route the router serves is
// in the OpenAPI document with its method, so the document cannot fall
// behind the code. (The flow tests check the responses themselves.)
func TestIdentityRoutesDocumented(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	doc, err := httpapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	engine, ok := e.h.(*gin.Engine)
	if !ok {
		t.Fatalf("router is a %T", e.h)
	}
	n := 0
	for _, r := range engine.Routes() {
		p := r.Path
		if !strings.HasPrefix(p, "/api/v1/auth") && !strings.HasPrefix(p, "/api/v1/me") &&
			!strings.HasPrefix(p, "/api/v1/organizations") && !strings.HasPrefix(p, "/api/v1/invitations") {
			continue
		}
		parts := strings.Split(p, "/")
		for i, s := range parts {
			if strings.HasPrefix(s, ":") {
				parts[i] = "{" + s[1:] + "}"
			}
		}
		item := doc.Paths.Value(strings.Join(parts, "/"))
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("%s %s is served but not in the OpenAPI document", r.Method, p)
		}
		n++
	}
	if n < 30 {
		t.Fatalf("only %d identity routes found", n)
	}
}
