package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/platform/s3"
)

// fileHandlers serve the files of resources: announcing an upload (a
// presigned PUT), completing it, reading (a presigned GET), listing and
// deleting.
type fileHandlers struct {
	files *file.Service
}

// register adds the file routes (documented in openapi/45-files.yaml).
func (h *fileHandlers) register(v1 *gin.RouterGroup, authn *Authenticator) {
	required := authn.Required()
	// The upload URL is a bearer credential for 15 minutes: never stored
	// for an Idempotency-Key replay.
	v1.POST("/resources/:id/files", required, secret(H(h.create)))
	v1.GET("/resources/:id/files", required, H(h.list))
	v1.GET("/files/:id", required, H(h.get))
	v1.POST("/files/:id/complete", required, H(h.complete))
	v1.DELETE("/files/:id", required, H(h.delete))
}

type fileRequest struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

type fileResponse struct {
	ID          uuid.UUID `json:"id"`
	ResourceID  uuid.UUID `json:"resource_id"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	// Status adds "processing" to the stored states: pending and completed.
	Status       string     `json:"status"`
	RejectReason string     `json:"reject_reason,omitempty"`
	SHA256       string     `json:"sha256,omitempty"`
	DetectedType string     `json:"detected_content_type,omitempty"`
	CreatedBy    *uuid.UUID `json:"created_by,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	CompletedAt  *time.Time `json:"completed_at,omitempty"`
	Download     *urlOut    `json:"download,omitempty"`
	Thumbnail    *urlOut    `json:"thumbnail,omitempty"`
}

type urlOut struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func toFile(f *file.File) fileResponse {
	status := string(f.Status)
	if f.Status == file.StatusPending && f.CompletedAt != nil {
		status = "processing"
	}
	return fileResponse{ID: f.ID, ResourceID: f.ResourceID, Filename: f.Filename, ContentType: f.ContentType, Size: f.Size,
		Status: status, RejectReason: f.RejectReason, SHA256: f.SHA256, DetectedType: f.DetectedType,
		CreatedBy: f.CreatedByUserID, CreatedAt: f.CreatedAt.UTC(), UpdatedAt: f.UpdatedAt.UTC(), CompletedAt: utcPtr(f.CompletedAt)}
}

func toURL(p *s3.Presigned) *urlOut {
	if p == nil {
		return nil
	}
	return &urlOut{URL: p.URL, ExpiresAt: p.ExpiresAt.UTC()}
}

type uploadResponse struct {
	File   fileResponse `json:"file"`
	Upload struct {
		URL       string            `json:"url"`
		Method    string            `json:"method"`
		Headers   map[string]string `json:"headers"`
		ExpiresAt time.Time         `json:"expires_at"`
	} `json:"upload"`
}

func (h *fileHandlers) create(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var req fileRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	up, err := h.files.Create(c.Request.Context(), principal(c), id,
		file.NewFile{Filename: req.Filename, ContentType: req.ContentType, Size: req.Size}, meta(c))
	if err != nil {
		return err
	}
	var out uploadResponse
	out.File = toFile(up.File)
	out.Upload.URL, out.Upload.Method, out.Upload.ExpiresAt = up.Put.URL, up.Put.Method, up.Put.ExpiresAt.UTC()
	// The client must send exactly these; the signature covers them.
	out.Upload.Headers = map[string]string{"Content-Type": up.File.ContentType, "Content-Length": strconv.FormatInt(up.File.Size, 10)}
	for k := range up.Put.Header {
		out.Upload.Headers[k] = up.Put.Header.Get(k)
	}
	c.JSON(http.StatusCreated, out)
	return nil
}

func (h *fileHandlers) list(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	rows, next, err := h.files.List(c.Request.Context(), principal(c), id, pg)
	if err != nil {
		return err
	}
	out := make([]fileResponse, len(rows))
	for i := range rows {
		out[i] = toFile(&rows[i])
	}
	list(c, out, next)
	return nil
}

func (h *fileHandlers) get(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	d, err := h.files.Get(c.Request.Context(), principal(c), id)
	if err != nil {
		return err
	}
	out := toFile(d.File)
	out.Download, out.Thumbnail = toURL(d.URL), toURL(d.Thumbnail)
	// The URLs expire in minutes; a cache must not keep them.
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
	return nil
}

func (h *fileHandlers) complete(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	f, err := h.files.Complete(c.Request.Context(), principal(c), id, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, toFile(f))
	return nil
}

func (h *fileHandlers) delete(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	if err := h.files.Delete(c.Request.Context(), principal(c), id, meta(c)); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
