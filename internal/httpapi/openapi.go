package httpapi

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"github.com/goccy/go-yaml"
)

// The OpenAPI document is kept as one YAML file per area under openapi/:
// base.yaml holds info, servers and shared components; every other file adds
// its paths and components. They are merged at start, so areas can grow
// without editing one long file.
//
//go:embed openapi/*.yaml
var openapiFS embed.FS

var (
	docOnce sync.Once
	docJSON []byte
	docVal  *openapi3.T
	docErr  error
)

// Document returns the merged, validated OpenAPI document.
func Document() (*openapi3.T, error) {
	docOnce.Do(func() { docJSON, docVal, docErr = buildDocument() })
	return docVal, docErr
}

// DocumentJSON returns the served form of the document.
func DocumentJSON() ([]byte, error) {
	_, err := Document()
	return docJSON, err
}

func buildDocument() ([]byte, *openapi3.T, error) {
	files, err := fs.Glob(openapiFS, "openapi/*.yaml")
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(files)
	merged := map[string]any{}
	for _, f := range files {
		b, err := openapiFS.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		var part map[string]any
		if err := yaml.Unmarshal(b, &part); err != nil {
			return nil, nil, fmt.Errorf("openapi %s: %w", f, err)
		}
		if err := mergeInto(merged, part, f); err != nil {
			return nil, nil, err
		}
	}
	raw, err := json.Marshal(merged)
	if err != nil {
		return nil, nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("openapi load: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, nil, fmt.Errorf("openapi validate: %w", err)
	}
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, raw, "", "  ")
	return pretty.Bytes(), doc, nil
}

// mergeInto adds part's keys to dst; maps merge recursively and a key that
// two files both set to a non-map value is an error, so two areas cannot
// silently define the same path or schema.
func mergeInto(dst, part map[string]any, file string) error {
	for k, v := range part {
		cur, exists := dst[k]
		if !exists {
			dst[k] = v
			continue
		}
		cm, ok1 := cur.(map[string]any)
		vm, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			return fmt.Errorf("openapi %s: %q is defined twice", file, k)
		}
		if err := mergeInto(cm, vm, file); err != nil {
			return err
		}
	}
	return nil
}

func serveDocument(_ *openapi3.T) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("Cache-Control", "public, max-age=300")
		c.Data(http.StatusOK, "application/json", docJSON)
	}
}

// docsPage renders the document as plain HTML: no scripts, no CDN, so it
// works offline and under a strict CSP.
var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} API</title>
<style>
body{font:15px/1.5 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#1f2328}
h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2rem}
.op{border:1px solid #d0d7de;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:600;font-family:monospace}
code,pre{font-family:ui-monospace,Menlo,monospace;font-size:13px}
pre{background:#f6f8fa;padding:.75rem;overflow:auto;border-radius:6px}
summary{cursor:pointer}
</style></head><body>
<h1>{{.Title}} API <small>{{.Version}}</small></h1>
<p>{{.Description}}</p>
<p>Machine-readable: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> (OpenAPI {{.OpenAPI}}).</p>
{{range .Tags}}<h2>{{.Name}}</h2>{{range .Ops}}
<div class="op" id="{{.ID}}"><span class="m">{{.Method}}</span> <code>{{.Path}}</code> — {{.Summary}}
{{if .Description}}<p>{{.Description}}</p>{{end}}
<details><summary>Details</summary><pre>{{.JSON}}</pre></details></div>{{end}}{{end}}
</body></html>`))

type docsOp struct {
	ID, Method, Path, Summary, Description, JSON string
}

type docsTag struct {
	Name string
	Ops  []docsOp
}

func serveDocsPage(doc *openapi3.T) gin.HandlerFunc {
	var page bytes.Buffer
	tags := map[string]*docsTag{}
	var order []string
	paths := doc.Paths.InMatchingOrder()
	sort.Strings(paths)
	for _, p := range paths {
		item := doc.Paths.Value(p)
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			op := item.GetOperation(method)
			if op == nil {
				continue
			}
			tag := "other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			if tags[tag] == nil {
				tags[tag] = &docsTag{Name: tag}
				order = append(order, tag)
			}
			b, _ := json.MarshalIndent(op, "", "  ")
			tags[tag].Ops = append(tags[tag].Ops, docsOp{ID: op.OperationID, Method: method, Path: p,
				Summary: op.Summary, Description: strings.TrimSpace(op.Description), JSON: string(b)})
		}
	}
	view := struct {
		Title, Version, Description, OpenAPI string
		Tags                                 []*docsTag
	}{Title: doc.Info.Title, Version: doc.Info.Version, Description: doc.Info.Description, OpenAPI: doc.OpenAPI}
	for _, t := range order {
		view.Tags = append(view.Tags, tags[t])
	}
	if err := docsPage.Execute(&page, view); err != nil {
		panic(err) // the template is static; a failure is a build bug
	}
	return func(c *gin.Context) {
		c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		c.Data(http.StatusOK, "text/html; charset=utf-8", page.Bytes())
	}
}
