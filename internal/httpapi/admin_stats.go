package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// registerStats adds GET /admin/stats: the business figures from local data
// (openapi/65-admin-stats.yaml, docs/admin.md "Business stats").
func (h *adminHandlers) registerStats(g *gin.RouterGroup) {
	g.GET("/stats", H(func(c *gin.Context) error {
		st, err := h.admin.Stats(c.Request.Context(), caller(c), meta(c))
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, st)
		return nil
	}))
}
