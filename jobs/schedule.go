package jobs

import "github.com/keelhq/keel/internal/schedule"

// Schedule is the scheduler's periodic table. Later capabilities add their
// entries here (trial expiry, reconciliation, purges, backup checks).
func Schedule() []schedule.Entry {
	return []schedule.Entry{}
}
