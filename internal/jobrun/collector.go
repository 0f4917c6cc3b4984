package jobrun

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
)

// LastSuccess returns when job's latest successful run finished, the zero
// time when job_runs holds none (or JOB_RUN_RETENTION purged them).
func (Store) LastSuccess(ctx context.Context, db sqlx.QueryerContext, job string) (time.Time, error) {
	var at sql.NullTime
	err := db.QueryRowxContext(ctx, `SELECT finished_at FROM job_runs
		WHERE job = $1 AND status = 'ok' ORDER BY started_at DESC LIMIT 1`, job).Scan(&at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, err
	}
	return at.Time, nil
}

// Collector exports, at each scrape, a gauge of the unix time of each job's
// latest successful run as job_runs records it (0 when none), so the value
// survives restarts and is the same from every process that serves it.
type Collector struct {
	db   sqlx.QueryerContext
	desc *prometheus.Desc
	jobs []string
}

// NewCollector exports name, labelled job, for jobs.
func NewCollector(db sqlx.QueryerContext, name, help string, jobs ...string) *Collector {
	return &Collector{db: db, desc: prometheus.NewDesc(name, help, []string{"job"}, nil), jobs: jobs}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. A job whose query fails exports
// nothing, which alerting reads as absent data, never as a fresh success.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, job := range c.jobs {
		at, err := Store{}.LastSuccess(ctx, c.db, job)
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
