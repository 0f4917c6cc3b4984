package config_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/config"
)

// readmeTable reads README's variable table: each variable with the
// binaries its "used by" column names ("all" is every binary).
func readmeTable(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]*)`")
	out := map[string][]string{}
	inTable := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "| variable | used by |") {
			inTable = true
			continue
		}
		if !inTable {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		var users []string
		for u := range strings.SplitSeq(cells[2], ",") {
			u = strings.TrimSpace(u)
			if u == "all" {
				users = append(users, config.Binaries...)
			} else if u != "" {
				users = append(users, u)
			}
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			out[m[1]] = users
		}
	}
	if len(out) == 0 {
		t.Fatal("README.md: no variable table found (a line starting `| variable | used by |`)")
	}
	return out
}

// TestVariablesMatchREADME keeps README's table and the loaders in step:
// the table lists exactly the variables some binary reads, and a binary it
// names as a user does read the variable.
func TestVariablesMatchREADME(t *testing.T) {
	t.Parallel()
	vars := config.Variables()
	readBy := map[string][]string{}
	for _, b := range config.Binaries {
		if len(vars[b]) == 0 {
			t.Fatalf("Variables()[%q] is empty", b)
		}
		for _, v := range vars[b] {
			readBy[v] = append(readBy[v], b)
		}
	}
	table := readmeTable(t)
	for v, bins := range readBy {
		if _, ok := table[v]; !ok {
			t.Errorf("%s is read by %s but missing from README.md's variable table", v, strings.Join(bins, ", "))
		}
	}
	for v, users := range table {
		bins, ok := readBy[v]
		if !ok {
			t.Errorf("README.md's variable table lists %s, which no binary reads", v)
			continue
		}
		for _, u := range users {
			if !slices.Contains(config.Binaries, u) {
				t.Errorf("README.md: %s is used by %q, not one of %v", v, u, config.Binaries)
			} else if !slices.Contains(bins, u) {
				t.Errorf("README.md says %s reads %s, but it is read only by %s", u, v, strings.Join(bins, ", "))
			}
		}
	}
}

// TestVariablesListsEachBinarysOwn checks the lists per binary: keelctl's
// come from its commands' methods, and one binary's names stay off
// another's list.
func TestVariablesListsEachBinarysOwn(t *testing.T) {
	t.Parallel()
	vars := config.Variables()
	for _, c := range []struct {
		binary, v string
		want      bool
	}{
		{"api", "JWT_SIGNING_KEY", true},
		{"api", "WORKER_QUEUES", false},
		{"worker", "WORKER_QUEUES", true},
		{"worker", "HTTP_ADDR", false},
		{"scheduler", "SCHEDULER_TEST_CLOCK_ORIGIN", true},
		{"scheduler", "SMTP_URL", false},
		{"keelctl", "DATABASE_OWNER_URL", true},
		{"keelctl", "BACKUP_DATABASE_URL", true},
		{"keelctl", "HTTP_ADDR", false},
	} {
		if got := slices.Contains(vars[c.binary], c.v); got != c.want {
			t.Errorf("Variables()[%q] contains %s: %v, want %v", c.binary, c.v, got, c.want)
		}
	}
}
