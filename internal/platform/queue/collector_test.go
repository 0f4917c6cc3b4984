package queue_test

import (
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/internal/platform/redistest"
)

// TestCollectorDeclaredQueues: every declared queue has its gauges from
// the first scrape, at zero, before Redis has ever seen a task of it; a
// queue Redis knows reports its real size and latency.
func TestCollectorDeclaredQueues(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	opt := asynq.RedisClientOpt{Addr: rs.Addr()}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(queue.NewCollector(insp, []string{"critical", "default", "low"}))

	gauges := func() map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += " " + l.GetName() + "=" + l.GetValue()
				}
				out[key] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	g := gauges()
	for _, q := range []string{"critical", "default", "low"} {
		for _, key := range []string{"keel_queue_latency_seconds queue=" + q, "keel_queue_paused queue=" + q, "keel_queue_size queue=" + q + " state=pending"} {
			if v, ok := g[key]; !ok || v != 0 {
				t.Errorf("%s = %v (exported %v) on an empty Redis, want 0", key, v, ok)
			}
		}
	}
	if g["keel_queue_inspector_up"] != 1 {
		t.Errorf("inspector_up %v", g["keel_queue_inspector_up"])
	}

	client := asynq.NewClient(opt)
	defer client.Close()
	for range 2 {
		if _, err := client.Enqueue(asynq.NewTask("test:noop", nil), asynq.Queue("default")); err != nil {
			t.Fatal(err)
		}
	}
	if v := gauges()["keel_queue_size queue=default state=pending"]; v != 2 {
		t.Errorf("default pending = %v, want 2", v)
	}

	rs.Stop()
	g = gauges()
	if v, ok := g["keel_queue_inspector_up"]; !ok || v != 0 {
		t.Errorf("inspector_up with Redis down = %v (exported %v), want 0", v, ok)
	}
	if _, ok := g["keel_queue_latency_seconds queue=critical"]; ok {
		t.Error("queue gauges exported while Redis is down")
	}
}
