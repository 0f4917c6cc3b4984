package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// DemoPassword is every demo user's password: long enough and not on the
// common list, and printed by seed-demo, so it is no secret.
const DemoPassword = "keel-demo-password-2026"

// DemoOwnerEmail marks a seeded database; seeding again stops when it exists.
const DemoOwnerEmail = "owner@demo.keel.localhost"

// SeedDemo creates a demo organization with an owner, an admin and a member
// (verified), a second organization, and pending invitations, and prints
// the logins to w. Run a second time it prints that the demo exists and
// changes nothing. It runs as the application role, through the same
// tenant-scoped transactions as the API.
func SeedDemo(ctx context.Context, db *sqlx.DB, w io.Writer) error {
	var users authdb.Store
	var orgs orgdb.Store
	_, err := users.UserByEmail(ctx, db, DemoOwnerEmail)
	if err == nil {
		fmt.Fprintf(w, "The demo already exists; log in as %s with password %s.\n", DemoOwnerEmail, DemoPassword)
		return nil
	}
	if !errors.Is(err, authdb.ErrNotFound) {
		return err
	}
	hash, err := HashPassword(DemoPassword, OWASPParams)
	if err != nil {
		return err
	}
	type person struct{ email, name, role string }
	people := []person{
		{DemoOwnerEmail, "Olivia Owner", RoleOwner},
		{"admin@demo.keel.localhost", "Adam Admin", RoleAdmin},
		{"member@demo.keel.localhost", "Mia Member", RoleMember},
	}
	acme := &orgdb.Organization{ID: newID(), Name: "Acme Demo"}
	globex := &orgdb.Organization{ID: newID(), Name: "Globex Demo"}
	now := time.Now()
	err = postgres.InTx(ctx, db, uuid.Nil, func(tx *sqlx.Tx) error {
		ids := make([]uuid.UUID, len(people))
		for i, p := range people {
			u := &authdb.User{ID: newID(), Email: p.email, Name: p.name, PasswordHash: hash, EmailVerifiedAt: &now}
			if err := users.CreateUser(ctx, tx, u); err != nil {
				return err
			}
			ids[i] = u.ID
		}
		meta := Meta{IP: "127.0.0.1", UserAgent: "keelctl seed-demo"}
		if err := CreateOrgWithOwner(ctx, tx, orgs, acme, ids[0], meta); err != nil {
			return err
		}
		for i := 1; i < len(people); i++ {
			if err := orgs.AddMember(ctx, tx, &orgdb.Membership{OrgID: acme.ID, UserID: ids[i], Role: people[i].role}); err != nil {
				return err
			}
		}
		for _, inv := range []struct{ email, role string }{{"new.hire@demo.keel.localhost", RoleMember}, {"contractor@demo.keel.localhost", RoleAdmin}} {
			if err := orgs.PutInvitation(ctx, tx, demoInvitation(acme.ID, ids[0], inv.email, inv.role)); err != nil {
				return err
			}
		}
		// The admin owns a second organization where the demo owner is a member,
		// so switching organizations can be tried at once.
		if err := CreateOrgWithOwner(ctx, tx, orgs, globex, ids[1], meta); err != nil {
			return err
		}
		if err := orgs.AddMember(ctx, tx, &orgdb.Membership{OrgID: globex.ID, UserID: ids[0], Role: RoleMember}); err != nil {
			return err
		}
		if err := orgs.PutInvitation(ctx, tx, demoInvitation(globex.ID, ids[1], "partner@demo.keel.localhost", RoleMember)); err != nil {
			return err
		}
		return nil
	})
	if postgres.IsUniqueViolation(err, "") || errors.Is(err, authdb.ErrEmailTaken) {
		fmt.Fprintf(w, "The demo already exists; log in as %s with password %s.\n", DemoOwnerEmail, DemoPassword)
		return nil
	}
	if err != nil {
		return fmt.Errorf("seed demo: %w", err)
	}
	fmt.Fprintf(w, "Demo organizations: %q (%s) and %q (%s).\nLog in with password %s as:\n", acme.Name, acme.ID, globex.Name, globex.ID, DemoPassword)
	for _, p := range people {
		fmt.Fprintf(w, "  %-6s  %s\n", p.role, p.email)
	}
	fmt.Fprintln(w, "Pending invitations: new.hire@ and contractor@demo.keel.localhost (Acme), partner@demo.keel.localhost (Globex).")
	return nil
}

// demoInvitation is a pending invitation whose token nobody knows (it was
// never mailed); it shows up in lists and can be resent from the API.
func demoInvitation(orgID, by uuid.UUID, email, role string) *orgdb.Invitation {
	_, hash := NewOpaqueToken()
	return &orgdb.Invitation{ID: newID(), OrgID: orgID, Email: email, Role: role, TokenHash: hash, InvitedBy: &by,
		ExpiresAt: time.Now().Add(InvitationTTL)}
}
