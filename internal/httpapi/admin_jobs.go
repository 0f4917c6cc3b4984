package httpapi

import "github.com/gin-gonic/gin"

func (h *adminHandlers) registerJobs(g *gin.RouterGroup) {}
