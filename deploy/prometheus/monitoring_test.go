// Package prometheus_test checks the alert rules and the Grafana dashboard
// against the metrics catalog of docs/operations.md, with Prometheus' own
// rule-file and PromQL parsers. The main module's e2e TestMetricsCatalog
// checks that the catalog is what the binaries export, so together they
// prove every metric an alert or a panel reads exists.
package prometheus_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/keelhq/keel/internal/platform/metrics"
)

const (
	rulesFile     = "alerts.yml"
	dashboardFile = "../grafana/keel.json"
	opsDoc        = "../../docs/operations.md"
	runbookBase   = "https://github.com/keelhq/keel/blob/main/docs/operations.md#"
)

var promql = parser.NewParser(parser.Options{})

func catalog(t *testing.T) metrics.Catalog {
	t.Helper()
	md, err := os.ReadFile(opsDoc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := metrics.ParseCatalog(md)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// selectors are the vector selectors of expr, each with its metric name.
// A selector without a fixed name ({__name__=~"..."}) is an error: it
// cannot be checked.
func selectors(expr string) ([]*parser.VectorSelector, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if vs.Name == "" && m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				vs.Name = m.Value
			}
		}
		if vs.Name == "" {
			err = fmt.Errorf("selector %s names no metric", vs)
		}
		out = append(out, vs)
		return nil
	})
	return out, err
}

// checkExpr parses expr and reports every metric it names that the
// catalog lacks, and every label value it matches exactly that the
// metric's catalog row does not name; it returns the metrics' catalog
// names.
func checkExpr(t *testing.T, c metrics.Catalog, where, expr string) []string {
	t.Helper()
	sels, err := selectors(expr)
	if err != nil {
		t.Errorf("%s: %v\n%s", where, err, expr)
		return nil
	}
	var out []string
	for _, vs := range sels {
		e, ok := c.Series(vs.Name)
		if !ok {
			t.Errorf("%s: metric %s is not in the catalog of %s", where, vs.Name, opsDoc)
			continue
		}
		out = append(out, e.Name)
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel {
				continue
			}
			if !slices.Contains(e.Labels, m.Name) {
				t.Errorf("%s: %s has no label %s in the catalog", where, e.Name, m.Name)
			} else if (m.Type == labels.MatchEqual || m.Type == labels.MatchNotEqual) && !e.Documents(m.Value) {
				t.Errorf("%s: %s{%s}: the catalog names no such %s value", where, e.Name, m, m.Name)
			}
		}
	}
	return out
}

// alertAnchors are the GitHub anchors of the "### " headings under
// "## Alerts" in the operations guide.
func alertAnchors(t *testing.T) map[string]bool {
	t.Helper()
	md, err := os.ReadFile(opsDoc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	in := false
	for line := range strings.Lines(string(md)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Alerts"
		case in && strings.HasPrefix(line, "### "):
			out[githubAnchor(strings.TrimPrefix(line, "### "))] = true
		}
	}
	return out
}

var notAnchor = regexp.MustCompile(`[^a-z0-9 _-]`)

// githubAnchor is the fragment GitHub gives a heading: lower case,
// punctuation dropped, spaces to hyphens.
func githubAnchor(h string) string {
	return strings.ReplaceAll(notAnchor.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
}

// TestAlertRules: the rule file is valid for Prometheus (rulefmt's strict
// parse, which parses every expression), every metric it uses is in the
// catalog, every alert has a severity, summary, description and a runbook
// link to its own heading under "## Alerts", every such heading has an
// alert, and the alerts the operators asked for exist.
func TestAlertRules(t *testing.T) {
	c := catalog(t)
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, promql, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	anchors := alertAnchors(t)
	alerts := map[string]bool{}
	uses := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: recording rule %s: this file holds alerts only", g.Name, r.Record)
				continue
			}
			alerts[r.Alert] = true
			for _, m := range checkExpr(t, c, "alert "+r.Alert, r.Expr) {
				uses[r.Alert+" "+m] = true
			}
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("alert %s: severity %q, want page or ticket", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, a)
				}
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookBase)
			if !ok || anchor != strings.ToLower(r.Alert) || !anchors[anchor] {
				t.Errorf("alert %s: runbook_url %q, want %s%s with a heading ### %s under ## Alerts in %s",
					r.Alert, r.Annotations["runbook_url"], runbookBase, strings.ToLower(r.Alert), r.Alert, opsDoc)
			}
		}
	}
	for a := range anchors {
		found := false
		for name := range alerts {
			found = found || strings.ToLower(name) == a
		}
		if !found {
			t.Errorf("%s has a runbook #%s for no alert of %s", opsDoc, a, rulesFile)
		}
	}
	for _, want := range []string{
		"KeelHTTP5xxRate keel_http_requests_total",
		"KeelQueueLatencyHigh keel_queue_latency_seconds",
		"KeelOutboxStuck keel_outbox_oldest_age_seconds",
		"KeelDeadTasks keel_tasks_archived_total",
		"KeelBackupTooOld keel_backup_last_success_timestamp_seconds",
		"KeelBackupVerificationFailed keel_backup_last_failure_timestamp_seconds",
		"KeelStripeWebhookBadSignatures billing_webhook_deliveries_total",
	} {
		if !uses[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

type panel struct {
	ID         int     `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

// TestDashboard: the dashboard is JSON Grafana imports (a title, a uid,
// unique panel IDs, every query on the dashboard's datasource variable),
// every query parses as PromQL over catalog metrics only, and it has a
// panel for each thing operators watch.
func TestDashboard(t *testing.T) {
	c := catalog(t)
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title      string  `json:"title"`
		UID        string  `json:"uid"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name, Type, Query string
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("%s: title %q, uid %q", dashboardFile, d.Title, d.UID)
	}
	if !slices.ContainsFunc(d.Templating.List, func(v struct{ Name, Type, Query string }) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	}) {
		t.Errorf("%s: no datasource variable of type prometheus", dashboardFile)
	}
	ids := map[int]bool{}
	used := map[string][]string{} // metric -> panel titles
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("panel %q: id %d is zero or taken", p.Title, p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: datasource is not ${datasource}", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				for _, m := range checkExpr(t, c, fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Expr) {
					used[m] = append(used[m], p.Title)
				}
			}
		}
	}
	walk(d.Panels)
	for _, m := range []string{
		"keel_http_requests_total", "keel_http_request_duration_seconds", // rate, errors, latency by route
		"keel_queue_size", "keel_queue_latency_seconds",
		"keel_tasks_failed_total", "keel_tasks_archived_total",
		"keel_outbox_backlog", "keel_outbox_oldest_age_seconds",
		"billing_webhook_deliveries_total", "billing_drift_repaired_total",
		"keel_auth_login_failures_total", "keel_backup_last_success_timestamp_seconds",
	} {
		if len(used[m]) == 0 {
			t.Errorf("%s: no panel shows %s", filepath.Base(dashboardFile), m)
		}
	}
}
