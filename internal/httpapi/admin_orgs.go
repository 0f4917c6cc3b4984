package httpapi

import "github.com/gin-gonic/gin"

func (h *adminHandlers) registerOrgs(g *gin.RouterGroup) {}
