package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/resource"
	"github.com/keelhq/keel/internal/tenant"
)

// resourceHandlers serve resources.
type resourceHandlers struct {
	resources *resource.Service
}

// register adds the resource routes (documented in
// openapi/40-resources.yaml).
func (h *resourceHandlers) register(v1 *gin.RouterGroup, authn *Authenticator) {
	g := v1.Group("/resources", authn.Required())
	g.GET("", H(h.list))
	g.POST("", H(h.create))
	g.GET("/:id", H(h.get))
	g.PATCH("/:id", H(h.update))
	g.DELETE("/:id", H(h.delete))
	g.POST("/:id/restore", H(h.restore))
}

type resourceResponse struct {
	ID                uuid.UUID       `json:"id"`
	Name              string          `json:"name"`
	Description       string          `json:"description"`
	Status            string          `json:"status"`
	Attributes        json.RawMessage `json:"attributes"`
	Version           int64           `json:"version"`
	CreatedByUserID   *uuid.UUID      `json:"created_by_user_id,omitempty"`
	CreatedByAPIKeyID *uuid.UUID      `json:"created_by_api_key_id,omitempty"`
	CreatedAt         time.Time       `json:"created_at"`
	UpdatedAt         time.Time       `json:"updated_at"`
}

func toResource(r *resource.Resource) resourceResponse {
	return resourceResponse{ID: r.ID, Name: r.Name, Description: r.Description, Status: r.Status, Attributes: r.Attributes,
		Version: r.Version, CreatedByUserID: r.CreatedByUserID, CreatedByAPIKeyID: r.CreatedByAPIKeyID,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

// etag is a resource's entity tag: its version, quoted.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// writeResource answers with r and its ETag.
func writeResource(c *gin.Context, status int, r *resource.Resource) {
	c.Header("ETag", etag(r.Version))
	c.JSON(status, toResource(r))
}

// resourceID parses the :id path parameter; a malformed ID names nothing.
func resourceID(c *gin.Context) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, apperr.New(apperr.NotFound, "not_found", "No such resource in this organization.")
	}
	return id, nil
}

// ifMatch reads If-Match as a version: `"7"` (the ETag) or a bare `7`;
// 0 when the header is absent.
func ifMatch(c *gin.Context) (int64, error) {
	v := strings.TrimSpace(c.GetHeader("If-Match"))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64)
	if err != nil || n < 1 {
		return 0, apperr.Validation(apperr.FieldError{Field: "If-Match", Message: `must be the version you are changing, as "3" (the ETag of a GET)`})
	}
	return n, nil
}

// noneMatch reports whether If-None-Match names the current version.
func noneMatch(c *gin.Context, version int64) bool {
	for _, t := range strings.Split(c.GetHeader("If-None-Match"), ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag(version) {
			return true
		}
	}
	return false
}

func (h *resourceHandlers) list(c *gin.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	sort, err := tenant.ParseSort(c.Query("sort"), resource.SortFields, resource.DefaultSort)
	if err != nil {
		return err
	}
	rows, next, err := h.resources.List(c.Request.Context(), principal(c), pg,
		resource.Filter{Sort: sort, Status: c.Query("status"), Q: c.Query("q")})
	if err != nil {
		return err
	}
	writeResourcePage(c, rows, next)
	return nil
}

type createResourceRequest struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Status      string          `json:"status"`
	Attributes  json.RawMessage `json:"attributes"`
}

func (h *resourceHandlers) create(c *gin.Context) error {
	var req createResourceRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	r, err := h.resources.Create(c.Request.Context(), principal(c),
		resource.Input{Name: req.Name, Description: req.Description, Status: req.Status, Attributes: req.Attributes}, meta(c))
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/resources/"+r.ID.String())
	writeResource(c, http.StatusCreated, r)
	return nil
}

func (h *resourceHandlers) get(c *gin.Context) error {
	id, err := resourceID(c)
	if err != nil {
		return err
	}
	r, err := h.resources.Get(c.Request.Context(), principal(c), id)
	if err != nil {
		return err
	}
	if noneMatch(c, r.Version) {
		c.Header("ETag", etag(r.Version))
		c.Status(http.StatusNotModified)
		return nil
	}
	writeResource(c, http.StatusOK, r)
	return nil
}

// optional is a JSON field that tells absent (Set false), null (Null) and
// a value apart, for partial updates.
type optional[T any] struct {
	Set, Null bool
	V         T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.V)
}

type patchResourceRequest struct {
	Name        optional[string] `json:"name"`
	Description optional[string] `json:"description"`
	Status      optional[string] `json:"status"`
	Attributes  json.RawMessage  `json:"attributes"`
	Version     optional[int64]  `json:"version"`
}

func (r *patchResourceRequest) Validate() error {
	var f fields
	for name, o := range map[string]optional[string]{"name": r.Name, "status": r.Status} {
		if o.Null {
			f.add(name, "must not be null; leave it out to keep it")
		}
	}
	if r.Attributes != nil && string(r.Attributes) == "null" {
		f.add("attributes", "must not be null; send {} to clear them")
	}
	if r.Version.Null || (r.Version.Set && r.Version.V < 1) {
		f.add("version", "must be the version you are changing (1 or more)")
	}
	return f.err()
}

// patch is the domain's partial update; a null description clears it.
func (r *patchResourceRequest) patch() resource.Patch {
	var p resource.Patch
	if r.Name.Set {
		p.Name = &r.Name.V
	}
	if r.Description.Set {
		p.Description = &r.Description.V
	}
	if r.Status.Set {
		p.Status = &r.Status.V
	}
	p.Attributes = r.Attributes
	return p
}

func (h *resourceHandlers) update(c *gin.Context) error {
	id, err := resourceID(c)
	if err != nil {
		return err
	}
	version, err := ifMatch(c)
	if err != nil {
		return err
	}
	var req patchResourceRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	if req.Version.Set {
		if version != 0 && version != req.Version.V {
			return apperr.Validation(apperr.FieldError{Field: "version", Message: "differs from If-Match; send one of them"})
		}
		version = req.Version.V
	}
	r, err := h.resources.Update(c.Request.Context(), principal(c), id, version, req.patch(), meta(c))
	if err != nil {
		return err
	}
	writeResource(c, http.StatusOK, r)
	return nil
}

func (h *resourceHandlers) delete(c *gin.Context) error {
	id, err := resourceID(c)
	if err != nil {
		return err
	}
	version, err := ifMatch(c)
	if err != nil {
		return err
	}
	if err := h.resources.Delete(c.Request.Context(), principal(c), id, version, meta(c)); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (h *resourceHandlers) restore(c *gin.Context) error {
	id, err := resourceID(c)
	if err != nil {
		return err
	}
	r, err := h.resources.Restore(c.Request.Context(), principal(c), id, meta(c))
	if err != nil {
		return err
	}
	writeResource(c, http.StatusOK, r)
	return nil
}
