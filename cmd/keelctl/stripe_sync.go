package main

import (
	"context"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/stripeapi"
)

// stripeSync is `keelctl stripe sync ORG_ID` (args: what follows "sync"):
// it reconciles one organization's subscription with Stripe and prints
// what it repaired. A malformed ID is a usage error (exit 2); an unknown
// organization, one without a Stripe customer, or Stripe not configured
// fail saying so (exit 1).
func stripeSync(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: stripe sync needs one ORG_ID", errUsage)
	}
	org, err := uuid.Parse(args[0])
	if err != nil {
		return fmt.Errorf("%w: stripe sync: %q is not an organization ID (a UUID)", errUsage, args[0])
	}
	sc, pc, plans, _, err := cfg.Stripe()
	if err != nil {
		return err
	}
	if sc.SecretKey == "" {
		return billing.ErrStripeOff
	}
	db, err := postgres.Open(pc.URL, postgres.Options{MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	svc := &billing.Service{DB: db, Store: billingdb.Store{}, Plans: plans.Catalog,
		Stripe: stripeapi.New(stripeapi.Config{SecretKey: sc.SecretKey, APIBase: sc.APIBase}), Log: zerolog.Nop()}
	r, err := svc.ReconcileOrg(ctx, org)
	if err != nil {
		return err
	}
	switch {
	case r.Repaired > 0:
		fmt.Fprintf(out, "organization %s: repaired from Stripe (billing.reconciled in its audit log)\n", org)
	case r.Foreign > 0:
		fmt.Fprintf(out, "organization %s: Stripe listed %d subscription(s) of another customer; nothing changed\n", org, r.Foreign)
	default:
		fmt.Fprintf(out, "organization %s: in sync with Stripe\n", org)
	}
	return nil
}
