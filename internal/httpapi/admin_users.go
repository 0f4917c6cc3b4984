package httpapi

import "github.com/gin-gonic/gin"

func (h *adminHandlers) registerUsers(g *gin.RouterGroup) {}
