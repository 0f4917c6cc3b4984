package admin

// JobStore lists periodic job runs and dead tasks.
type JobStore interface {
}
