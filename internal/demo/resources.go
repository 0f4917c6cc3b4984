package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/resource"
	"github.com/keelhq/keel/internal/resource/resourcedb"
	"github.com/keelhq/keel/internal/tenant"
)

// OrgName is the demo organization the logins land in.
const OrgName = "Acme Demo"

// sampleResources are the demo organization's resources: a small plant's
// equipment, in every status, so sorting, searching and filtering show
// something at once.
func sampleResources() []resource.Input {
	kinds := []struct{ kind, area string }{
		{"Pump", "north wing"}, {"Valve", "boiler room"}, {"Compressor", "yard"}, {"Sensor", "line 2"}, {"Conveyor", "packing"},
	}
	statuses := []string{resource.StatusActive, resource.StatusActive, resource.StatusDraft, resource.StatusActive, resource.StatusArchived}
	var out []resource.Input
	for i := range 25 {
		k := kinds[i%len(kinds)]
		attrs, _ := json.Marshal(map[string]any{"serial": fmt.Sprintf("%c-%04d", k.kind[0], 1000+i*37), "area": k.area, "checked": i%3 == 0})
		out = append(out, resource.Input{
			Name:        fmt.Sprintf("%s %02d", k.kind, i/len(kinds)+1),
			Description: fmt.Sprintf("%s in the %s.", k.kind, k.area),
			Status:      statuses[(i/len(kinds)+i)%len(statuses)],
			Attributes:  attrs,
		})
	}
	return out
}

// seedResources gives the demo organization its sample resources when it
// has none, created by the demo owner through the resource service: counted
// against its plan (the trial's) and audited like any other.
func seedResources(ctx context.Context, db *sqlx.DB, plans *plan.Catalog, w io.Writer) error {
	owner, err := authdb.Store{}.UserByEmail(ctx, db, OwnerEmail)
	if err != nil {
		return fmt.Errorf("seed resources: demo owner: %w", err)
	}
	orgs := orgService(db, plans)
	ms, err := orgs.Memberships(ctx, db, owner.ID)
	if err != nil {
		return fmt.Errorf("seed resources: %w", err)
	}
	var p *tenant.Principal
	for _, m := range ms {
		if m.OrgName == OrgName && m.Role == tenant.RoleOwner {
			p = &tenant.Principal{UserID: owner.ID, OrgID: m.OrgID, Role: m.Role}
		}
	}
	if p == nil {
		return fmt.Errorf("seed resources: %s owns no organization named %q", OwnerEmail, OrgName)
	}
	svc := &resource.Service{DB: db, Store: resourcedb.Store{},
		Limits: plandb.NewLimiter(plans)}
	existing, _, err := svc.List(ctx, p, tenant.Page{Limit: 1}, resource.Filter{})
	if err != nil {
		return fmt.Errorf("seed resources: %w", err)
	}
	if len(existing) > 0 {
		return nil
	}
	meta := audit.Meta{IP: "127.0.0.1", UserAgent: "keelctl seed-demo"}
	samples := sampleResources()
	for _, in := range samples {
		if _, err := svc.Create(ctx, p, in, meta); err != nil {
			return fmt.Errorf("seed resource %q: %w", in.Name, err)
		}
	}
	fmt.Fprintf(w, "%d sample resources in %q.\n", len(samples), OrgName)
	return nil
}
