package httpapi

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestWebAppServesTheSPAOutsideTheAPI(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "assets"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"index.html": "<html>app</html>", "assets/app-1.js": "console.log(1)"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.NoRoute(webApp(dir))
	get := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w
	}
	for _, p := range []string{"/", "/login", "/verify-email?token=abc", "/resources/3f0c"} {
		w := get("GET", p)
		if w.Code != 200 || w.Body.String() != "<html>app</html>" {
			t.Errorf("GET %s: %d %q, want index.html", p, w.Code, w.Body.String())
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", p, csp)
		}
		if w.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", p, w.Header().Get("Cache-Control"))
		}
	}
	if w := get("GET", "/../../etc/passwd"); strings.Contains(w.Body.String(), "root:") {
		t.Errorf("a path outside WEB_DIR was served: %d", w.Code)
	}
	w := get("GET", "/assets/app-1.js")
	if w.Code != 200 || w.Body.String() != "console.log(1)" || !strings.Contains(w.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("asset: %d %q %q", w.Code, w.Body.String(), w.Header().Get("Cache-Control"))
	}
	for _, c := range []struct{ method, path string }{{"GET", "/api/v1/nope"}, {"GET", "/admin/x"}, {"POST", "/login"}} {
		w := get(c.method, c.path)
		if w.Code != 404 || !strings.Contains(w.Header().Get("Content-Type"), "problem+json") {
			t.Errorf("%s %s: %d %s, want a problem+json 404", c.method, c.path, w.Code, w.Header().Get("Content-Type"))
		}
	}
	r2 := gin.New()
	r2.NoRoute(webApp(""))
	w = httptest.NewRecorder()
	r2.ServeHTTP(w, httptest.NewRequest("GET", "/login", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("without WEB_DIR: %d, want 404", w.Code)
	}
}
