package billing

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are billing's Prometheus collectors. A nil *Metrics records
// nothing (tests, keelctl).
type Metrics struct {
	stateChanges  *prometheus.CounterVec
	drift         *prometheus.CounterVec
	received      *prometheus.CounterVec
	applied       *prometheus.CounterVec
	versionUnread prometheus.Counter
}

// NewMetrics registers billing's collectors on r.
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		stateChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_state_changes_total", Help: "Organizations' billing status changes, by new status.",
		}, []string{"status"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_drift_repaired_total", Help: "Local billing state repaired by reconciliation with Stripe, by kind (subscription, event).",
		}, []string{"kind"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_webhook_deliveries_total", Help: "Stripe webhook deliveries, by result (stored, duplicate, bad_signature, bad_request, unavailable).",
		}, []string{"result"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_events_total", Help: "Stripe events the worker finished, by type (handled types, else other) and result (applied, ignored).",
		}, []string{"type", "result"}),
		versionUnread: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_events_api_version_mismatch_total", Help: "Stripe events ignored because their API version is not " + APIVersion + " (the webhook endpoint's version is wrong: alert).",
		}),
	}
	// Every bounded series exists from the start at zero, so rates and
	// alerts (bad signatures, drift) work before the first occurrence.
	for _, st := range []Status{Trialing, Active, PastDue, ReadOnly, Canceled, Free} {
		m.stateChanges.WithLabelValues(string(st))
	}
	for _, k := range DriftKinds {
		m.drift.WithLabelValues(k)
	}
	for _, r := range DeliveryResults {
		m.received.WithLabelValues(r)
	}
	for _, typ := range append(slices.Clone(HandledEvents), otherEvent) {
		for _, res := range []string{EventApplied, EventIgnored} {
			m.applied.WithLabelValues(typ, res)
		}
	}
	r.MustRegister(m.stateChanges, m.drift, m.received, m.applied, m.versionUnread)
	return m
}

// DriftKinds are the kind label values of billing_drift_repaired_total.
var DriftKinds = []string{"subscription", "event"}

// DeliveryResults are the result label values of
// billing_webhook_deliveries_total.
var DeliveryResults = []string{"stored", "duplicate", "bad_signature", "bad_request", "unavailable"}

// otherEvent is the type label of every event type outside HandledEvents:
// Stripe has hundreds, and an endpoint subscribed to all of them would
// otherwise add a series per type.
const otherEvent = "other"

// StateChanged counts an organization moving to status.
func (m *Metrics) StateChanged(to Status) {
	if m != nil {
		m.stateChanges.WithLabelValues(string(to)).Inc()
	}
}

// DriftRepaired counts n repairs of kind.
func (m *Metrics) DriftRepaired(kind string, n int) {
	if m != nil && n > 0 {
		m.drift.WithLabelValues(kind).Add(float64(n))
	}
}

// Delivery counts a webhook delivery's result.
func (m *Metrics) Delivery(result string) {
	if m != nil {
		m.received.WithLabelValues(result).Inc()
	}
}

// Finished counts an event applied or ignored.
func (m *Metrics) Finished(typ, result string) {
	if m != nil {
		if !slices.Contains(HandledEvents, typ) {
			typ = otherEvent
		}
		m.applied.WithLabelValues(typ, result).Inc()
	}
}

// VersionMismatch counts an event ignored for its API version.
func (m *Metrics) VersionMismatch() {
	if m != nil {
		m.versionUnread.Inc()
	}
}
