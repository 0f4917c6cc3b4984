package demo_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/demo"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/redistest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

func TestSeedDemo(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	var out bytes.Buffer
	if err := demo.Seed(ctx, db.App, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{demo.Password, "owner@demo.keel.localhost", "admin@demo.keel.localhost", "member@demo.keel.localhost"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	var counts struct {
		Orgs, Members, Invitations, Verified int
	}
	if err := db.Owner.QueryRow(`SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM memberships),
		(SELECT count(*) FROM invitations WHERE accepted_at IS NULL), (SELECT count(*) FROM users WHERE email_verified_at IS NOT NULL)`).
		Scan(&counts.Orgs, &counts.Members, &counts.Invitations, &counts.Verified); err != nil {
		t.Fatal(err)
	}
	if counts.Orgs != 2 || counts.Members != 5 || counts.Invitations != 3 || counts.Verified != 3 {
		t.Fatalf("seeded %+v", counts)
	}
	// Both organizations start billing as a signup does: a 14-day trial of
	// the default plan (pro), audited, and the summary says so.
	var trials int
	if err := db.Owner.Get(&trials, `SELECT count(*) FROM subscriptions s JOIN organizations o ON o.id = s.org_id
		WHERE s.status = 'trialing' AND s.plan_id = 'pro' AND s.trial_end BETWEEN now() + interval '13 days' AND now() + interval '15 days'
		AND EXISTS (SELECT 1 FROM audit_log a WHERE a.org_id = o.id AND a.action = 'billing.trial_started')`); err != nil {
		t.Fatal(err)
	}
	if trials != 2 {
		t.Fatalf("%d demo organizations on a trial of pro, want 2", trials)
	}
	if !strings.Contains(out.String(), `"Acme Demo" is on a trial of the Pro plan until `) {
		t.Fatalf("output lacks the demo's trial:\n%s", out.String())
	}
	out.Reset()
	if err := demo.Seed(ctx, db.App, &out); err != nil || !strings.Contains(out.String(), "already exists") {
		t.Fatalf("second run: %v %q", err, out.String())
	}
	var orgs int
	_ = db.Owner.Get(&orgs, `SELECT count(*) FROM organizations`)
	if orgs != 2 {
		t.Fatalf("second run changed the database: %d organizations", orgs)
	}
	// The demo organization has its sample resources, once, counted
	// against its plan; a demo seeded before resources existed gets them.
	resources := func() (n, used int, statuses int) {
		t.Helper()
		if err := db.Owner.QueryRow(`SELECT count(*), count(DISTINCT r.status),
			GREATEST(coalesce((SELECT value FROM usage_counters WHERE org_id = o.id AND metric = 'resources'), 0) + coalesce((SELECT sum(delta) FROM usage_deltas WHERE org_id = o.id AND metric = 'resources'), 0), 0)::bigint
			FROM organizations o JOIN resources r ON r.org_id = o.id WHERE o.name = 'Acme Demo' GROUP BY o.id`).Scan(&n, &statuses, &used); err != nil {
			t.Fatal(err)
		}
		return
	}
	if n, used, st := resources(); n != 25 || used != 25 || st != 3 {
		t.Fatalf("demo resources: %d, usage %d, %d statuses", n, used, st)
	}
	if _, err := db.Owner.Exec(`DELETE FROM resources WHERE name LIKE 'Pump%'; INSERT INTO usage_deltas (org_id, metric, delta) SELECT id, 'resources', -5 FROM organizations WHERE name = 'Acme Demo'`); err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(ctx, db.App, &out); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := resources(); n != 20 {
		t.Fatalf("a re-run added resources to an organization that has some: %d", n)
	}
	if _, err := db.Owner.Exec(`DELETE FROM resources; DELETE FROM usage_counters; DELETE FROM usage_deltas`); err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(ctx, db.App, &out); err != nil {
		t.Fatal(err)
	}
	if n, used, _ := resources(); n != 25 || used != 25 {
		t.Fatalf("demo without resources re-seeded to %d, usage %d", n, used)
	}

	// The printed logins work, and the owner lands in the demo organization as owner.
	rs := redistest.Start(t)
	rdb := rs.Client()
	defer rdb.Close()
	iss, _ := auth.NewIssuer(bytes.Repeat([]byte("k"), 32), nil, "https://app.keel.test")
	svc := &auth.Service{DB: db.App, Users: authdb.Store{}, Orgs: &org.Service{DB: db.App, Store: orgdb.Store{}}, Tokens: iss, Throttle: auth.NewThrottle(rdb), Hasher: auth.NewHasher(auth.OWASPParams, 2, 0)}
	for email, role := range map[string]string{"owner@demo.keel.localhost": "owner", "admin@demo.keel.localhost": "admin", "member@demo.keel.localhost": "member"} {
		s, err := svc.Login(ctx, auth.LoginInput{Email: email, Password: demo.Password}, audit.Meta{IP: "127.0.0.1"})
		if err != nil || s.Role != role {
			t.Fatalf("login %s: %+v %v", email, s, err)
		}
	}
}
