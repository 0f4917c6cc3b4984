package admin

// StatsStore computes the business stats.
type StatsStore interface {
}
