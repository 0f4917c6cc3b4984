package retention_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/retention"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// The generic soft-delete rule leaves resources alone: a resource's files
// must go with it, which only resources:purge does. Another soft-deleted
// table in the same run is still purged.
func TestPastRetentionSkipsResources(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	org := uuid.New()
	if _, err := db.Owner.Exec(fmt.Sprintf(`
		INSERT INTO organizations (id, name) VALUES ('%[1]s', 'A');
		INSERT INTO resources (org_id, id, name, deleted_at) VALUES
			('%[1]s', gen_random_uuid(), 'long gone', now() - interval '400 days'),
			('%[1]s', gen_random_uuid(), 'live', NULL);
		CREATE TABLE notes (id serial PRIMARY KEY, deleted_at timestamptz);
		GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO %[2]q;
		INSERT INTO notes (deleted_at) VALUES (now() - interval '40 days'), (NULL);`, org, postgrestest.AppRole())); err != nil {
		t.Fatal(err)
	}
	res, err := (&retention.Purger{DB: db.App}).PastRetention(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := res["resources.deleted_at"]; r.Deleted != 0 || r.Skipped == "" {
		t.Fatalf("resources rule: %+v", r)
	}
	if r := res["notes.deleted_at"]; r.Deleted != 1 {
		t.Fatalf("notes rule: %+v (%v)", r, res)
	}
	var n int
	if err := db.Owner.Get(&n, `SELECT count(*) FROM resources`); err != nil || n != 2 {
		t.Fatalf("%d resources left (%v), want 2", n, err)
	}
}

// Billing's rows: finished Stripe events past 90 days go (a pending one
// stays, however old), billing-notice keys past 400 days go, in each
// organization (billing_notices is under Row Level Security).
func TestPastRetentionBillingRows(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	org := uuid.New()
	if _, err := db.Owner.Exec(fmt.Sprintf(`
		INSERT INTO organizations (id, name) VALUES ('%[1]s', 'A');
		INSERT INTO stripe_events (id, type, created, payload, status, received_at) VALUES
			('evt_old_applied', 'invoice.paid', now() - interval '100 days', '{}', 'applied', now() - interval '100 days'),
			('evt_old_ignored', 'plan.created', now() - interval '100 days', '{}', 'ignored', now() - interval '91 days'),
			('evt_old_pending', 'invoice.paid', now() - interval '100 days', '{}', 'pending', now() - interval '100 days'),
			('evt_recent', 'invoice.paid', now() - interval '80 days', '{}', 'applied', now() - interval '80 days');
		INSERT INTO billing_notices (org_id, key, created_at) VALUES
			('%[1]s', 'dunning:in_old:3', now() - interval '401 days'),
			('%[1]s', 'dunning:in_new:3', now() - interval '399 days');`, org)); err != nil {
		t.Fatal(err)
	}
	res, err := (&retention.Purger{DB: db.App}).PastRetention(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := res["stripe_events"]; r.Deleted != 2 {
		t.Fatalf("stripe_events: %+v", r)
	}
	if r := res["billing_notices"]; r.Deleted != 1 {
		t.Fatalf("billing_notices: %+v", r)
	}
	var left []string
	if err := db.Owner.Select(&left, `SELECT id FROM stripe_events UNION ALL SELECT key FROM billing_notices ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(left) != "[dunning:in_new:3 evt_old_pending evt_recent]" {
		t.Fatalf("left %v", left)
	}
}
