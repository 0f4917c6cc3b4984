// Command baregin serves one JSON handler on plain Gin (no middleware, no
// database), the baseline that bench/wrk-me.sh measures GET /api/v1/me against.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/gin-gonic/gin"
)

func main() {
	addr := "127.0.0.1:18081"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/me", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"id": "01a21777-7eec-7a90-9549-31e85500a8aa", "email": "owner@demo.keel.localhost", "name": "Olivia Owner"})
	})
	if err := http.ListenAndServe(addr, r); err != nil {
		fmt.Fprintln(os.Stderr, "baregin:", err)
		os.Exit(1)
	}
}
