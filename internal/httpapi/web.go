package httpapi

import (
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/gin-gonic/gin"
)

// webCSP is the single-page app's policy: its own scripts, styles and API
// only (web/ inlines nothing), images also from data: and blob: URLs. With
// file storage on, filesOrigin (the origin of the bucket's presigned URLs:
// S3_PUBLIC_ENDPOINT, else S3_ENDPOINT, else the AWS bucket's host) may be
// connected to, for uploads, and shown images from, for thumbnails.
func webCSP(filesOrigin string) string {
	s3 := ""
	if filesOrigin != "" {
		s3 = " " + filesOrigin
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:" + s3 + "; " +
		"connect-src 'self'" + s3 + "; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

// webApp serves the built single-page app from dir (WEB_DIR) to the GET and
// HEAD requests no route matched: a file of dir when one exists, else
// index.html, so the app's own paths (/login, /resources/…, the links in
// emails) load it. Paths under /api/ and /admin/ keep their problem+json
// 404. Hashed assets are cached for a year; index.html never, so a deploy
// is picked up on the next load.
func webApp(dir, filesOrigin string) gin.HandlerFunc {
	csp := webCSP(filesOrigin)
	return func(c *gin.Context) {
		p := c.Request.URL.Path
		if dir == "" || (c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead) ||
			strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/admin/") {
			notFound(c)
			return
		}
		h := c.Writer.Header()
		name := path.Clean("/" + p)
		file := filepath.Join(dir, filepath.FromSlash(name))
		if st, err := os.Stat(file); err != nil || st.IsDir() || name == "/index.html" {
			file = filepath.Join(dir, "index.html")
			h.Set("Cache-Control", "no-cache")
			h.Set("Content-Security-Policy", csp)
		} else if strings.HasPrefix(name, "/assets/") {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		c.Status(http.StatusOK)
		http.ServeFile(c.Writer, c.Request, file)
	}
}
