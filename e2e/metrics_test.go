package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/proctest"
	"github.com/keelhq/keel/internal/platform/tooltest"
	"github.com/keelhq/keel/jobs/task"
)

// TestMetricsCatalog: the metrics table of docs/operations.md is exactly
// what the three binaries export, with each family's binary, type and
// label names, and a fresh worker exports every task type's series at zero.
func TestMetricsCatalog(t *testing.T) {
	t.Parallel()
	root, err := tooltest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := metrics.ParseCatalog(md)
	if err != nil {
		t.Fatal(err)
	}

	s := newStack(t)
	services := startServices(t, s)
	// keel_job_last_success_timestamp_seconds appears with a periodic job's
	// first success: run one instead of waiting for the schedule.
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: s.redis.Addr()})
	defer client.Close()
	if _, err := client.Enqueue(task.NewPeriodicTask(task.TypeOutboxSweep, time.Now()), task.SpecOf(task.TypeOutboxSweep).Options()...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(scrapeText(t, services["worker"]), `keel_job_last_success_timestamp_seconds{job="outbox:sweep"}`) {
		if time.Now().After(deadline) {
			t.Fatal("outbox:sweep never succeeded on the worker")
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, bin := range []string{"api", "worker", "scheduler"} {
		families := scrape(t, services[bin])
		used := map[string]bool{}
		for name, mf := range families {
			e, ok := catalogEntry(catalog, name)
			if !ok {
				t.Errorf("%s exports %s (%s), which the catalog in docs/operations.md does not list", bin, name, mf.GetType())
				continue
			}
			used[e.Name] = true
			if !slices.Contains(e.Binaries, bin) {
				t.Errorf("%s exports %s, but the catalog says only %v do", bin, name, e.Binaries)
			}
			if e.Prefix() {
				continue
			}
			if got := strings.ToLower(mf.GetType().String()); got != e.Type {
				t.Errorf("%s: %s is a %s, the catalog says %s", bin, name, got, e.Type)
			}
			if got := labelNames(mf); !slices.Equal(got, e.Labels) {
				t.Errorf("%s: %s has labels %v, the catalog says %v", bin, name, got, e.Labels)
			}
		}
		for _, e := range catalog {
			if !slices.Contains(e.Binaries, bin) || used[e.Name] {
				continue
			}
			t.Errorf("the catalog lists %s for %s, which does not export it", e.Name, bin)
		}
	}

	worker := scrape(t, services["worker"])
	// The series deploy/prometheus/alerts.yml selects by label value exist
	// before their first event, so increase() sees the first one.
	api := scrape(t, services["api"])
	for _, c := range []struct {
		bin    map[string]*dto.MetricFamily
		name   string
		labels map[string]string
	}{
		{worker, "keel_job_runs_total", map[string]string{"job": task.TypeBackupVerify, "status": "failed"}},
		{worker, "keel_queue_latency_seconds", map[string]string{"queue": task.QueueCritical}},
		{api, "billing_webhook_deliveries_total", map[string]string{"result": "bad_signature"}},
		{api, "billing_events_api_version_mismatch_total", map[string]string{}},
	} {
		if v, ok := sample(c.bin[c.name], c.labels); !ok || v != 0 {
			t.Errorf("%s%v: %v (exported %v), want 0 from the start", c.name, c.labels, v, ok)
		}
	}

	// Every task type a default worker serves has its series at zero from
	// the start: no task but outbox:sweep ran here, unless the stack's
	// scheduler fired a periodic one on its real clock (files:cleanup-pending
	// at :23 past every hour made CI fail). The scheduler is scraped after
	// the worker, so any task the worker counted shows as fired here.
	fired := scrape(t, services["scheduler"])["keel_scheduler_firings_total"]
	for _, sp := range task.Specs() {
		if v, _ := sample(fired, map[string]string{"entry": sp.Type, "result": "enqueued"}); v > 0 {
			continue
		}
		for _, name := range []string{"keel_tasks_processed_total", "keel_tasks_failed_total", "keel_tasks_retried_total", "keel_tasks_archived_total", "keel_tasks_throttled_total"} {
			v, ok := sample(worker[name], map[string]string{"type": sp.Type, "queue": sp.Queue})
			switch {
			case !ok:
				t.Errorf("worker: no %s series for %s", name, sp.Type)
			case v != 0 && sp.Type != task.TypeOutboxSweep:
				t.Errorf("worker: %s{type=%q} = %v before any such task ran", name, sp.Type, v)
			}
		}
	}
}

// catalogEntry is the row documenting family name.
func catalogEntry(c metrics.Catalog, name string) (metrics.CatalogEntry, bool) {
	for _, e := range c {
		if e.Covers(name) {
			return e, true
		}
	}
	return metrics.CatalogEntry{}, false
}

func scrapeText(t *testing.T, svc *service) string {
	t.Helper()
	code, body := proctest.Get(svc.metrics + "/metrics")
	if code != 200 {
		t.Fatalf("%s/metrics: %d %.200s", svc.metrics, code, body)
	}
	return body
}

func scrape(t *testing.T, svc *service) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(scrapeText(t, svc)))
	if err != nil {
		t.Fatalf("%s/metrics: %v", svc.metrics, err)
	}
	return fams
}

// labelNames are the sorted label names of mf's series, without the le and
// quantile of the exposition format.
func labelNames(mf *dto.MetricFamily) []string {
	var out []string
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(out, l.GetName()) {
				out = append(out, l.GetName())
			}
		}
	}
	slices.Sort(out)
	return out
}

// sample is the value of mf's counter or gauge series with exactly labels.
func sample(mf *dto.MetricFamily, labels map[string]string) (float64, bool) {
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			match = match && labels[l.GetName()] == l.GetValue()
		}
		if match {
			if mf.GetType() == dto.MetricType_GAUGE {
				return m.GetGauge().GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}
