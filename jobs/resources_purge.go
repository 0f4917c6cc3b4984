package jobs

import (
	"context"

	"github.com/keelhq/keel/internal/resource"
)

// resourcesPurge is resources:purge: the resource service deletes what
// stayed deleted past its restore window, with its files; the run's detail
// says how many organizations it visited and how many resources it purged.
type resourcesPurge struct {
	resources *resource.Service
}

func (p *resourcesPurge) run(ctx context.Context) (any, error) {
	return p.resources.PurgeDeleted(ctx)
}
