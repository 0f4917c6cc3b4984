package config

import "github.com/keelhq/keel/internal/plan"

// Plans is the plan catalog: PLANS_FILE, or the plans.yaml embedded in the
// binary when it is unset. An invalid file fails the start like any other
// malformed variable.
type Plans struct {
	PlansFile string
	Catalog   *plan.Catalog
}

func loadPlans(l *Loader) Plans {
	p := Plans{PlansFile: l.String("PLANS_FILE", "")}
	c, err := plan.Load(p.PlansFile)
	if err != nil {
		l.fail("PLANS_FILE", "%v", err)
		return p
	}
	p.Catalog = c
	return p
}
