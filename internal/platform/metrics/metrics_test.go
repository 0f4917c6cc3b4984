package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/keelhq/keel/internal/platform/metrics"
)

// Declared task types export every per-type series at zero before any
// task ran, and only those types.
func TestTaskSeriesExistAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewTasks(reg)
	m.Declare(map[string]string{"email:send": "default", "stripe:event": "critical"})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	for _, name := range []string{"keel_tasks_processed_total", "keel_tasks_failed_total", "keel_tasks_retried_total",
		"keel_tasks_archived_total", "keel_tasks_throttled_total"} {
		f := byName[name]
		if f == nil || len(f.GetMetric()) != 2 {
			t.Fatalf("%s: %v, want a series per declared type", name, f)
		}
		for _, s := range f.GetMetric() {
			if v := s.GetCounter().GetValue(); v != 0 {
				t.Fatalf("%s %v = %v, want 0", name, s.GetLabel(), v)
			}
		}
	}
	if f := byName["keel_task_duration_seconds"]; f == nil || len(f.GetMetric()) != 4 {
		t.Fatalf("keel_task_duration_seconds: %v, want ok and error per type", f)
	}
	// Counting still works on a declared series.
	m.Archived("stripe:event", "critical")
	families, _ = reg.Gather()
	for _, f := range families {
		if f.GetName() != "keel_tasks_archived_total" {
			continue
		}
		total := 0.0
		for _, s := range f.GetMetric() {
			total += s.GetCounter().GetValue()
		}
		if total != 1 {
			t.Fatalf("archived total %v after one archive", total)
		}
	}
}
