package httpapi

import "github.com/gin-gonic/gin"

func (h *adminHandlers) registerStats(g *gin.RouterGroup) {}
