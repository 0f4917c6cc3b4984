// Package doctor checks every configured dependency and reports one line per
// check, for `keelctl doctor`.
package doctor

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Check is one named probe.
type Check struct {
	Name  string
	Probe func(ctx context.Context) (detail string, err error)
}

// Run probes each check in order, each within timeout, writes
// "ok   name  detail" or "FAIL name  reason" per check, and returns how many failed.
func Run(ctx context.Context, w io.Writer, timeout time.Duration, checks []Check) int {
	failed := 0
	for _, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		detail, err := c.Probe(cctx)
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(w, "FAIL %-12s %v\n", c.Name, err)
			continue
		}
		fmt.Fprintf(w, "ok   %-12s %s\n", c.Name, detail)
	}
	return failed
}
