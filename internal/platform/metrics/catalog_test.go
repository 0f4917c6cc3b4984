package metrics_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/platform/metrics"
)

func TestParseCatalog(t *testing.T) {
	const md = "# Ops\n\n## Metrics\n\ntext\n\n" +
		"| metric | binary | type | labels | meaning |\n|---|---|---|---|---|\n" +
		"| `a_total` | api, worker | counter | `route` (a template), `method` (GET, other) | x |\n" +
		"| `b_seconds` | worker | histogram | | y |\n" +
		"| `go_*` | api | various | | z |\n\n## Next\n\n| metric | binary | type | labels |\n|---|---|---|---|\n| `c` | api | gauge | |\n"
	c, err := metrics.ParseCatalog([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 3 || c[0].Name != "a_total" || !slices.Equal(c[0].Binaries, []string{"api", "worker"}) ||
		c[0].Type != "counter" || !slices.Equal(c[0].Labels, []string{"method", "route"}) || !c[2].Prefix() {
		t.Fatalf("%+v", c)
	}
	for name, want := range map[string]bool{"b_seconds_bucket": true, "b_seconds_count": true, "a_total_bucket": false,
		"go_goroutines": true, "a_total": true, "c": false, "b": false} {
		if _, ok := c.Series(name); ok != want {
			t.Errorf("Series(%q) = %v, want %v", name, ok, want)
		}
	}

	for v, want := range map[string]bool{"GET": true, "other": true, "template": true, "GE": false, "templat": false, "": false} {
		if got := c[0].Documents(v); got != want {
			t.Errorf("Documents(%q) = %v, want %v", v, got, want)
		}
	}

	for _, bad := range []struct{ row, err string }{
		{"| `x` | api | count | | |", "type"},
		{"| `x` | web | counter | | |", "binary"},
		{"| x | api | counter | | |", "one backticked name"},
		{"| `a_total` | api | counter | | |", "twice"},
	} {
		_, err := metrics.ParseCatalog([]byte("## Metrics\n| metric | binary | type | labels |\n|---|---|---|---|\n| `a_total` | api | counter | | |\n" + bad.row + "\n"))
		if err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("%s: error %v, want one about %s", bad.row, err, bad.err)
		}
	}
	if _, err := metrics.ParseCatalog([]byte("## Metrics\n| name | type |\n")); err == nil {
		t.Error("a table with another header parsed")
	}
}

func TestMethodLabel(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "DELETE": "DELETE", "OPTIONS": "OPTIONS", "get": "other", "PROPFIND": "other", "": "other"} {
		if got := metrics.Method(in); got != want {
			t.Errorf("Method(%q) = %q, want %q", in, got, want)
		}
	}
}
