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
	r.NoRoute(webApp(dir, ""))
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
	r2.NoRoute(webApp("", ""))
	w = httptest.NewRecorder()
	r2.ServeHTTP(w, httptest.NewRequest("GET", "/login", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("without WEB_DIR: %d, want 404", w.Code)
	}
}

// With file storage on, the app's page may PUT uploads to the bucket's
// origin and show thumbnails from it, and nothing else; with it off the
// policy names no other origin.
func TestWebAppCSPAllowsTheFileBucketsOrigin(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html>app</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	directives := func(origin string) map[string]string {
		r := gin.New()
		r.NoRoute(webApp(dir, origin))
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/resources/1", nil))
		out := map[string]string{}
		for _, d := range strings.Split(w.Header().Get("Content-Security-Policy"), ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			out[name] = value
		}
		return out
	}
	on := directives("http://127.0.0.1:7070")
	for name, want := range map[string]string{
		"connect-src": "'self' http://127.0.0.1:7070",
		"img-src":     "'self' data: blob: http://127.0.0.1:7070",
		"script-src":  "'self'",
		"default-src": "'none'",
	} {
		if on[name] != want {
			t.Errorf("with storage: %s %q, want %q", name, on[name], want)
		}
	}
	off := directives("")
	if off["connect-src"] != "'self'" || off["img-src"] != "'self' data: blob:" {
		t.Errorf("without storage: connect-src %q, img-src %q", off["connect-src"], off["img-src"])
	}
}
