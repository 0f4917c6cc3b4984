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
	// rateLimitOpen counts requests let through unchecked because the
	// per-organization rate limiter could not reach Redis (it fails open).
	rateLimitOpen prometheus.Counter
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
		rateLimitOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keel_rate_limit_fail_open_total", Help: "Requests let through without a rate-limit check because Redis could not be asked.",
		}),
	}
	r.MustRegister(h.requests, h.latency, h.rateLimitOpen)
	return h
}

// RateLimitFailedOpen counts a request let through without a rate-limit
// check. h may be nil.
func (h *HTTP) RateLimitFailedOpen() {
	if h != nil {
		h.rateLimitOpen.Inc()
	}
}

// Observe records one request. route is the matched template ("unmatched"
// for 404s), so metrics cardinality stays bounded whatever clients send.
func (h *HTTP) Observe(route, method, status string, d time.Duration) {
	method = Method(method)
	h.requests.WithLabelValues(route, method, status).Inc()
	h.latency.WithLabelValues(route, method, status).Observe(d.Seconds())
}

// Method is method as a label value: one of the methods Keel's routes and
// CORS preflights use, or "other". net/http accepts any token as a method,
// so the raw value would let clients mint series.
func Method(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// Tasks counts processed tasks by type, queue and outcome.
type Tasks struct {
	processed *prometheus.CounterVec
	failed    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	TaskOutcomes
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
	t.TaskOutcomes = newTaskOutcomes(r)
	return t
}

// Declare creates, at zero, every per-type series of the task types given
// as type → queue, so a rate or an alert on failures or dead tasks has a
// series to work on before the first task of a type ever ran or failed
// (an absent series makes rate() empty, not 0).
func (t *Tasks) Declare(types map[string]string) {
	for typ, queue := range types {
		for _, c := range []*prometheus.CounterVec{t.processed, t.failed, t.retried, t.archived, t.throttled} {
			c.WithLabelValues(typ, queue).Add(0)
		}
		for _, outcome := range []string{"ok", "error"} {
			t.duration.WithLabelValues(typ, queue, outcome)
		}
	}
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

// TaskOutcomes counts what Asynq did with failed attempts: retried (a retry
// spent), archived (dead), and throttled (put back by per-organization
// fairness without spending a retry).
type TaskOutcomes struct {
	retried   *prometheus.CounterVec
	archived  *prometheus.CounterVec
	throttled *prometheus.CounterVec
}

func newTaskOutcomes(r prometheus.Registerer) TaskOutcomes {
	o := TaskOutcomes{
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_tasks_retried_total", Help: "Failed task attempts that will be retried, by type and queue.",
		}, []string{"type", "queue"}),
		archived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_tasks_archived_total", Help: "Tasks whose final attempt failed (dead tasks), by type and queue.",
		}, []string{"type", "queue"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_tasks_throttled_total", Help: "Tasks put back because their organization hit its concurrency limit on a worker.",
		}, []string{"type", "queue"}),
	}
	r.MustRegister(o.retried, o.archived, o.throttled)
	return o
}

// Retried counts a failed attempt that Asynq will retry.
func (t *Tasks) Retried(typ, queue string) { t.retried.WithLabelValues(typ, queue).Inc() }

// Archived counts a task whose final attempt failed.
func (t *Tasks) Archived(typ, queue string) { t.archived.WithLabelValues(typ, queue).Inc() }

// Throttled counts a task put back by per-organization fairness.
func (t *Tasks) Throttled(typ, queue string) { t.throttled.WithLabelValues(typ, queue).Inc() }

// Jobs counts periodic job runs by outcome and remembers the last success,
// so an alert can fire when, say, backup:verify has not passed for a day.
type Jobs struct {
	runs        *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
}

// NewJobs registers the job collectors on r.
func NewJobs(r prometheus.Registerer) *Jobs {
	j := &Jobs{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_job_runs_total", Help: "Periodic job runs by job and status (ok, failed).",
		}, []string{"job", "status"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keel_job_last_success_timestamp_seconds", Help: "Unix time of each periodic job's last successful run on this worker.",
		}, []string{"job"}),
	}
	r.MustRegister(j.runs, j.lastSuccess)
	return j
}

// Declare creates, at zero, the run series of every job given (ok and
// failed), so an alert on failed runs has a series before the first run.
// The last-success gauge is left absent until a run succeeds: a zero
// there would read as a success in 1970.
func (j *Jobs) Declare(jobs []string) {
	for _, job := range jobs {
		for _, status := range []string{"ok", "failed"} {
			j.runs.WithLabelValues(job, status).Add(0)
		}
	}
}

// Observe records one run of job.
func (j *Jobs) Observe(job string, err error) {
	if err != nil {
		j.runs.WithLabelValues(job, "failed").Inc()
		return
	}
	j.runs.WithLabelValues(job, "ok").Inc()
	j.lastSuccess.WithLabelValues(job).SetToCurrentTime()
}
