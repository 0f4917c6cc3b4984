package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/stripetest"
)

// keelctl stripe sync ORG_ID against stripe-mock: the organization's
// customer's subscriptions are listed; bad input fails with a message
// naming the problem.
func TestStripeSync(t *testing.T) {
	db := postgrestest.New(t)
	s := stripetest.Start(t)
	t.Setenv("DATABASE_URL", db.AppURL)
	t.Setenv("STRIPE_API_BASE", s.URL)
	t.Setenv("STRIPE_SECRET_KEY", "")
	ctx := context.Background()
	org := uuid.New()
	if _, err := db.Owner.Exec(fmt.Sprintf(`INSERT INTO organizations (id, name) VALUES ('%[1]s', 'Acme');
		INSERT INTO billing_customers (stripe_customer_id, org_id) VALUES ('cus_acme', '%[1]s');`, org)); err != nil {
		t.Fatal(err)
	}
	sync := func(args ...string) (string, error) {
		cfg, err := config.LoadCtl(nil)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = stripeSync(ctx, cfg, args, &out)
		return out.String(), err
	}
	if _, err := sync(org.String()); !errors.Is(err, billing.ErrStripeOff) {
		t.Fatalf("without STRIPE_SECRET_KEY: %v", err)
	}
	t.Setenv("STRIPE_SECRET_KEY", stripetest.SecretKey)
	for _, args := range [][]string{nil, {"a", "b"}, {"not-a-uuid"}} {
		if _, err := sync(args...); !errors.Is(err, errUsage) {
			t.Fatalf("stripe sync %q: %v, want a usage error", args, err)
		}
	}
	if _, err := sync(uuid.NewString()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("unknown organization: %v", err)
	}
	out, err := sync(org.String())
	if err != nil || !strings.Contains(out, org.String()) {
		t.Fatalf("stripe sync: %q %v", out, err)
	}
	if got := s.RequestsTo("GET", "/v1/subscriptions"); len(got) != 1 || got[0].Form.Get("customer") != "cus_acme" || got[0].Form.Get("status") != "all" {
		t.Fatalf("requests %+v", got)
	}
}
