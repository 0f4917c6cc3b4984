package jobrun

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
)

// Last returns when job's latest run of status (StatusOK, StatusFailed)
// finished, the zero time when job_runs holds none (or JOB_RUN_RETENTION
// purged them).
func (Store) Last(ctx context.Context, db sqlx.QueryerContext, job, status string) (time.Time, error) {
	var at sql.NullTime
	err := db.QueryRowxContext(ctx, `SELECT finished_at FROM job_runs
		WHERE job = $1 AND status = $2 ORDER BY started_at DESC LIMIT 1`, job, status).Scan(&at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, err
	}
	return at.Time, nil
}

// Collector exports, at each scrape, a gauge of the unix time of each job's
// latest run of one status as job_runs records it (0 when none), so the
// value survives restarts and is the same from every process that serves
// it. With one for ok and one for failed runs, "the newest run failed" is
// failed > ok, which clears as soon as a later run succeeds.
type Collector struct {
	db     sqlx.QueryerContext
	desc   *prometheus.Desc
	status string
	jobs   []string
}

// NewCollector exports name, labelled job, for jobs' runs of status.
func NewCollector(db sqlx.QueryerContext, name, help, status string, jobs ...string) *Collector {
	return &Collector{db: db, desc: prometheus.NewDesc(name, help, []string{"job"}, nil), status: status, jobs: jobs}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. A job whose query fails exports
// nothing, which alerting reads as absent data, never as a fresh success.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, job := range c.jobs {
		at, err := Store{}.Last(ctx, c.db, job, c.status)
		if err != nil {
			continue
		}
		v := 0.0
		if !at.IsZero() {
			v = float64(at.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, job)
	}
}
