package outbox

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the outbox backlog at scrape time: how many rows wait
// for the relay and how old the oldest is. A growing age with a steady
// count means the relay is stuck (Redis down, or no worker running).
type Collector struct {
	db      sqlx.QueryerContext
	backlog *prometheus.Desc
	oldest  *prometheus.Desc
}

// NewCollector returns a Collector reading db.
func NewCollector(db sqlx.QueryerContext) *Collector {
	return &Collector{
		db:      db,
		backlog: prometheus.NewDesc("keel_outbox_backlog", "Outbox rows not yet dispatched to the queue.", nil, nil),
		oldest:  prometheus.NewDesc("keel_outbox_oldest_age_seconds", "Age of the oldest undispatched outbox row.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.backlog; ch <- c.oldest }

// Collect implements prometheus.Collector; a failed query exports nothing,
// which alerting reads as absent data.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, age, err := Backlog(ctx, c.db)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age.Seconds())
}
