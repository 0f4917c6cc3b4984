// Package demo seeds a demo organization so a newcomer can log in at once
// (keelctl seed-demo, and make dev on an empty database).
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// Password is every demo user's password: long enough and not on the
// common list, and printed by seed-demo, so it is no secret.
const Password = "keel-demo-password-2026"

// OwnerEmail marks a seeded database; seeding again stops when it exists.
const OwnerEmail = "owner@demo.keel.localhost"

// Seed creates a demo organization with an owner, an admin and a member
// (verified), a second organization, pending invitations and sample
// resources, and prints the logins to w. Run a second time it prints that
// the demo exists and changes nothing (a demo seeded before resources
// existed gets its resources). It runs as the application role, through
// the same tenant-scoped transactions as the API. The plans are the
// embedded catalog; SeedPlans takes PLANS_FILE's.
func Seed(ctx context.Context, db *sqlx.DB, w io.Writer) error {
	return SeedPlans(ctx, db, nil, w)
}

// SeedPlans is Seed with a plan catalog (nil: the embedded one). The
// organizations start billing as a signup does: a trial of the default
// plan when the catalog gives one, which the summary names.
func SeedPlans(ctx context.Context, db *sqlx.DB, plans *plan.Catalog, w io.Writer) error {
	if plans == nil {
		var err error
		if plans, err = plan.Load(""); err != nil {
			return err
		}
	}
	if err := seedPeople(ctx, db, plans, w); err != nil {
		return err
	}
	return seedResources(ctx, db, plans, w)
}

// orgService is an organization service as the API wires it: plan limits
// and billing's hooks (a new organization gets its subscriptions row).
func orgService(db *sqlx.DB, plans *plan.Catalog) *org.Service {
	bill := &billing.Service{DB: db, Store: billingdb.Store{}, Plans: plans}
	return &org.Service{DB: db, Store: orgdb.Store{}, Limits: plandb.NewLimiter(plans), Billing: bill}
}

// seedPeople seeds the users, organizations and invitations, once.
func seedPeople(ctx context.Context, db *sqlx.DB, plans *plan.Catalog, w io.Writer) error {
	var users authdb.Store
	var store orgdb.Store
	orgs := orgService(db, plans)
	_, err := users.UserByEmail(ctx, db, OwnerEmail)
	if err == nil {
		fmt.Fprintf(w, "The demo already exists; log in as %s with password %s.\n", OwnerEmail, Password)
		return nil
	}
	if !errors.Is(err, auth.ErrNotFound) {
		return err
	}
	hash, err := auth.HashPassword(Password, auth.OWASPParams)
	if err != nil {
		return err
	}
	type person struct{ email, name, role string }
	people := []person{
		{OwnerEmail, "Olivia Owner", tenant.RoleOwner},
		{"admin@demo.keel.localhost", "Adam Admin", tenant.RoleAdmin},
		{"member@demo.keel.localhost", "Mia Member", tenant.RoleMember},
	}
	var acme, globex uuid.UUID
	now := time.Now()
	err = postgres.InTx(ctx, db, uuid.Nil, func(tx *sqlx.Tx) error {
		ids := make([]uuid.UUID, len(people))
		for i, p := range people {
			u := &auth.User{ID: postgres.NewID(), Email: p.email, Name: p.name, PasswordHash: hash, EmailVerifiedAt: &now}
			if err := users.CreateUser(ctx, tx, u); err != nil {
				return err
			}
			ids[i] = u.ID
		}
		meta := audit.Meta{IP: "127.0.0.1", UserAgent: "keelctl seed-demo"}
		if acme, err = orgs.CreateWithOwner(ctx, tx, OrgName, ids[0], meta); err != nil {
			return err
		}
		for i := 1; i < len(people); i++ {
			if err := store.AddMember(ctx, tx, acme, ids[i], people[i].role); err != nil {
				return err
			}
		}
		for _, inv := range []struct{ email, role string }{{"new.hire@demo.keel.localhost", tenant.RoleMember}, {"contractor@demo.keel.localhost", tenant.RoleAdmin}} {
			if err := store.PutInvitation(ctx, tx, demoInvitation(acme, ids[0], inv.email, inv.role)); err != nil {
				return err
			}
		}
		// The admin owns a second organization where the demo owner is a member,
		// so switching organizations can be tried at once.
		if globex, err = orgs.CreateWithOwner(ctx, tx, "Globex Demo", ids[1], meta); err != nil {
			return err
		}
		if err := store.AddMember(ctx, tx, globex, ids[0], tenant.RoleMember); err != nil {
			return err
		}
		if err := store.PutInvitation(ctx, tx, demoInvitation(globex, ids[1], "partner@demo.keel.localhost", tenant.RoleMember)); err != nil {
			return err
		}
		return nil
	})
	if postgres.IsUniqueViolation(err, "") || errors.Is(err, auth.ErrEmailTaken) {
		fmt.Fprintf(w, "The demo already exists; log in as %s with password %s.\n", OwnerEmail, Password)
		return nil
	}
	if err != nil {
		return fmt.Errorf("seed demo: %w", err)
	}
	fmt.Fprintf(w, "Demo organizations: %q (%s) and %q (%s).\nLog in with password %s as:\n", OrgName, acme, "Globex Demo", globex, Password)
	for _, p := range people {
		fmt.Fprintf(w, "  %-6s  %s\n", p.role, p.email)
	}
	fmt.Fprintln(w, "Pending invitations: new.hire@ and contractor@demo.keel.localhost (Acme), partner@demo.keel.localhost (Globex).")
	return printBilling(ctx, db, plans, w, acme)
}

// printBilling names the demo organization's plan and billing status (a
// trial's end included), read back as the API would.
func printBilling(ctx context.Context, db *sqlx.DB, plans *plan.Catalog, w io.Writer, orgID uuid.UUID) error {
	var a *billing.Account
	err := postgres.InTx(ctx, db, orgID, func(tx *sqlx.Tx) error {
		var err error
		a, err = billingdb.Store{}.Account(ctx, tx, orgID, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("seed demo: billing: %w", err)
	}
	p := a.Plan(plans)
	if a.Status == billing.Trialing && a.TrialEnd != nil {
		fmt.Fprintf(w, "Billing: %q is on a trial of the %s plan until %s (no card; see docs/billing.md).\n",
			OrgName, p.Name, a.TrialEnd.UTC().Format(time.DateOnly))
		return nil
	}
	fmt.Fprintf(w, "Billing: %q is on the %s plan (%s).\n", OrgName, p.Name, a.Status)
	return nil
}

// demoInvitation is a pending invitation whose token nobody knows (it was
// never mailed); it shows up in lists and can be resent from the API.
func demoInvitation(orgID, by uuid.UUID, email, role string) *org.Invitation {
	_, hash := auth.NewOpaqueToken()
	return &org.Invitation{ID: postgres.NewID(), OrgID: orgID, Email: email, Role: role, TokenHash: hash, InvitedBy: &by,
		ExpiresAt: time.Now().Add(org.InvitationTTL)}
}
