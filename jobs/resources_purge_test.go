package jobs_test

import (
	"strings"
	"testing"

	"github.com/keelhq/keel/jobs/task"
)

// resources:purge deletes, in every organization, the resources deleted
// more than 30 days ago, keeps the rest, audits each purge and records the
// run.
func TestResourcesPurge(t *testing.T) {
	t.Parallel()
	f := MustFleet(t, nil)
	if _, err := f.db.Owner.Exec(`
		INSERT INTO organizations (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'a'), ('00000000-0000-0000-0000-00000000000b', 'b');
		INSERT INTO resources (org_id, id, name, deleted_at) VALUES
			('00000000-0000-0000-0000-00000000000a', gen_random_uuid(), 'old a', now() - interval '31 days'),
			('00000000-0000-0000-0000-00000000000b', gen_random_uuid(), 'old b', now() - interval '90 days'),
			('00000000-0000-0000-0000-00000000000b', gen_random_uuid(), 'recent', now() - interval '29 days'),
			('00000000-0000-0000-0000-00000000000b', gen_random_uuid(), 'live', NULL);`); err != nil {
		t.Fatal(err)
	}
	if err := f.run(t, task.TypeResourcesPurge); err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := f.db.Owner.Select(&left, `SELECT name FROM resources ORDER BY name`); err != nil {
		t.Fatal(err)
	}
	if strings.Join(left, ",") != "live,recent" {
		t.Fatalf("left %q", left)
	}
	var audits int
	if err := f.db.Owner.Get(&audits, `SELECT count(*) FROM audit_log WHERE action = 'resource.purged'`); err != nil || audits != 2 {
		t.Fatalf("%d resource.purged entries (%v)", audits, err)
	}
	if r := f.lastRun(t, task.TypeResourcesPurge); r.Status != "ok" || !strings.Contains(r.Detail, `"purged": 2`) {
		t.Fatalf("run: %+v", r)
	}
}
