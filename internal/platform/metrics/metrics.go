// Package metrics holds each binary's Prometheus registry and the collectors
// shared by the binaries: HTTP requests and tasks.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves r in the Prometheus text format.
func Handler(r *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{Registry: r})
}

// HTTP counts requests and their latency by route template, method and status.
type HTTP struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewHTTP registers the HTTP collectors on r.
func NewHTTP(r prometheus.Registerer) *HTTP {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keel_http_request_duration_seconds", Help: "HTTP request latency by route, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
	}
	r.MustRegister(h.requests, h.latency)
	return h
}

// Observe records one request. route is the matched template ("unmatched"
// for 404s), so metrics cardinality stays bounded whatever clients send.
func (h *HTTP) Observe(route, method, status string, d time.Duration) {
	h.requests.WithLabelValues(route, method, status).Inc()
	h.latency.WithLabelValues(route, method, status).Observe(d.Seconds())
}

// Tasks counts processed tasks by type, queue and outcome.
type Tasks struct {
	processed *prometheus.CounterVec
	failed    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
}

// NewTasks registers the task collectors on r.
func NewTasks(r prometheus.Registerer) *Tasks {
	t := &Tasks{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_tasks_processed_total", Help: "Tasks handled (successfully or not) by type and queue.",
		}, []string{"type", "queue"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_tasks_failed_total", Help: "Tasks whose handler returned an error, by type and queue.",
		}, []string{"type", "queue"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keel_task_duration_seconds", Help: "Task handler duration by type, queue and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"type", "queue", "outcome"}),
	}
	r.MustRegister(t.processed, t.failed, t.duration)
	return t
}

// Observe records one handled task.
func (t *Tasks) Observe(typ, queue string, err error, d time.Duration) {
	t.processed.WithLabelValues(typ, queue).Inc()
	outcome := "ok"
	if err != nil {
		outcome = "error"
		t.failed.WithLabelValues(typ, queue).Inc()
	}
	t.duration.WithLabelValues(typ, queue, outcome).Observe(d.Seconds())
}
