package queue

import (
	"slices"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports each queue's size by state and its latency (age of the
// oldest pending task) from Asynq's Inspector at scrape time, so the numbers
// cover the whole fleet, not one worker.
type Collector struct {
	Inspector *asynq.Inspector
	// Queues are always reported, even before Redis knows them.
	Queues []string

	size    *prometheus.Desc
	latency *prometheus.Desc
	paused  *prometheus.Desc
	up      *prometheus.Desc
}

// NewCollector returns a Collector over insp.
func NewCollector(insp *asynq.Inspector, queues []string) *Collector {
	return &Collector{
		Inspector: insp,
		Queues:    queues,
		size:      prometheus.NewDesc("keel_queue_size", "Tasks in the queue by state.", []string{"queue", "state"}, nil),
		latency:   prometheus.NewDesc("keel_queue_latency_seconds", "Age of the queue's oldest pending task.", []string{"queue"}, nil),
		paused:    prometheus.NewDesc("keel_queue_paused", "1 when the queue is paused.", []string{"queue"}, nil),
		up:        prometheus.NewDesc("keel_queue_inspector_up", "1 when the last scrape could read Redis.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.latency
	ch <- c.paused
	ch <- c.up
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	names, err := c.Inspector.Queues()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	known := len(names)
	for _, q := range c.Queues {
		if !slices.Contains(names, q) {
			names = append(names, q)
		}
	}
	for i, q := range names {
		// A queue Redis does not know yet is empty. Asynq's GetQueueInfo
		// answers it with an internal error that does not wrap
		// ErrQueueNotFound, so it is not asked.
		info := &asynq.QueueInfo{Queue: q}
		if i < known {
			var err error
			if info, err = c.Inspector.GetQueueInfo(q); err != nil {
				continue
			}
		}
		for state, n := range map[string]int{
			"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled, "retry": info.Retry,
			"archived": info.Archived, "completed": info.Completed, "aggregating": info.Aggregating,
		} {
			ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, info.Latency.Seconds(), q)
		p := 0.0
		if info.Paused {
			p = 1
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, p, q)
	}
}
