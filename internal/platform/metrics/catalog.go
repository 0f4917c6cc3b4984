package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// CatalogEntry is one row of the metrics catalog, the table under
// "## Metrics" in docs/operations.md: the operator's list of what each
// binary exports. Tests in both Go modules read it, so the table, the
// binaries and the dashboard and alert rules cannot drift apart.
type CatalogEntry struct {
	// Name is a metric family name, or a prefix ending in "*" for the
	// runtime collectors' families (go_*, process_*).
	Name string
	// Binaries export the family: api, worker, scheduler.
	Binaries []string
	// Type is counter, gauge, histogram or summary; empty for a prefix.
	Type string
	// Labels are the family's label names, sorted (le and quantile of
	// histograms and summaries excluded).
	Labels []string
	// LabelText is the row's labels cell as written: the names and the
	// values each label takes.
	LabelText string
}

// Documents reports whether value is written in e's labels cell: a label
// value a rule or a panel matches on must be one the catalog names.
func (e CatalogEntry) Documents(value string) bool {
	return value != "" && regexp.MustCompile(`(^|[\s(,;])`+regexp.QuoteMeta(value)+`($|[\s),;])`).MatchString(e.LabelText)
}

// Catalog is the parsed metrics table.
type Catalog []CatalogEntry

// Prefix reports whether e stands for every family starting with its
// name before the "*".
func (e CatalogEntry) Prefix() bool { return strings.HasSuffix(e.Name, "*") }

// Covers reports whether e documents family name.
func (e CatalogEntry) Covers(name string) bool {
	if e.Prefix() {
		return strings.HasPrefix(name, strings.TrimSuffix(e.Name, "*"))
	}
	return e.Name == name
}

// Series finds the entry of a name as PromQL uses it: a family, or a
// histogram's _bucket, _sum or _count series, or a summary's _sum or _count.
func (c Catalog) Series(name string) (CatalogEntry, bool) {
	for _, e := range c {
		if e.Covers(name) {
			return e, true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suf)
			if !ok || base != e.Name {
				continue
			}
			if e.Type == "histogram" || (e.Type == "summary" && suf != "_bucket") {
				return e, true
			}
		}
	}
	return CatalogEntry{}, false
}

var backticked = regexp.MustCompile("`([^`]+)`")

// ParseCatalog reads the first table under the "## Metrics" heading of
// md, whose header must be | metric | binary | type | labels | ... A
// row's metric and labels are the backticked words of those cells (label
// values are written plainly, never in backticks); binary is a comma list.
func ParseCatalog(md []byte) (Catalog, error) {
	sc := bufio.NewScanner(bytes.NewReader(md))
	in, header := false, false
	var out Catalog
	seen := map[string]bool{}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "## ") {
			if in && header {
				break
			}
			in = line == "## Metrics"
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if header {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if !header {
			if len(cells) < 4 || cells[0] != "metric" || cells[1] != "binary" || cells[2] != "type" || cells[3] != "labels" {
				return nil, fmt.Errorf("line %d: the metrics table must start | metric | binary | type | labels |, got %q", n, line)
			}
			header = true
			continue
		}
		if strings.Trim(cells[0], "-: ") == "" {
			continue
		}
		if len(cells) < 4 {
			return nil, fmt.Errorf("line %d: %d cells, want at least 4", n, len(cells))
		}
		names := backticked.FindAllStringSubmatch(cells[0], -1)
		if len(names) != 1 {
			return nil, fmt.Errorf("line %d: the metric cell must hold one backticked name, got %q", n, cells[0])
		}
		e := CatalogEntry{Name: names[0][1]}
		if seen[e.Name] {
			return nil, fmt.Errorf("line %d: %s is listed twice", n, e.Name)
		}
		seen[e.Name] = true
		for _, b := range strings.Split(cells[1], ",") {
			b = strings.TrimSpace(b)
			if !slices.Contains([]string{"api", "worker", "scheduler"}, b) {
				return nil, fmt.Errorf("line %d: %s: binary %q is not api, worker or scheduler", n, e.Name, b)
			}
			e.Binaries = append(e.Binaries, b)
		}
		switch t := cells[2]; {
		case e.Prefix() && (t == "" || t == "various"):
		case !e.Prefix() && slices.Contains([]string{"counter", "gauge", "histogram", "summary"}, t):
			e.Type = t
		default:
			return nil, fmt.Errorf("line %d: %s: type %q is not counter, gauge, histogram or summary (various for a prefix)", n, e.Name, t)
		}
		e.LabelText = cells[3]
		for _, l := range backticked.FindAllStringSubmatch(cells[3], -1) {
			e.Labels = append(e.Labels, l[1])
		}
		slices.Sort(e.Labels)
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no metrics table under ## Metrics")
	}
	return out, nil
}
