package httpapi

import "github.com/gin-gonic/gin"

func (h *adminHandlers) registerAudit(g *gin.RouterGroup) {}
