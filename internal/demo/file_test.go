package demo_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/demo"
	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/file/filedb"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/s3test"
)

// The demo file lands, ready and counted, on the demo organization's oldest
// resource once; without a resource or a bucket, SeedFile says so and
// changes nothing.
func TestSeedFile(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	srv := s3test.Start(t, "files")
	ctx := context.Background()
	cat, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	files := &file.Service{DB: db.App, Store: filedb.Store{}, Objects: s3.Bucket{Client: srv.Client, Name: srv.Bucket},
		Limiter: &plan.Limiter{Plans: plan.Fixed{Plan: cat.DefaultPlan()}, Store: plandb.Store{}}}
	var out bytes.Buffer
	if err := demo.Seed(ctx, db.App, &out); err != nil {
		t.Fatal(err)
	}
	if err := demo.SeedFile(ctx, db.App, nil, &out); err != nil || !strings.Contains(out.String(), "S3_BUCKET is not set") {
		t.Fatalf("without a bucket: %v\n%s", err, out.String())
	}
	// Seed adds sample resources; take them away for the no-resource case.
	db.Owner.MustExec(`DELETE FROM resources`)
	if err := demo.SeedFile(ctx, db.App, files, &out); err != nil || !strings.Contains(out.String(), "has no resource") {
		t.Fatalf("without a resource: %v\n%s", err, out.String())
	}
	db.Owner.MustExec(`INSERT INTO resources (org_id, id, name, created_at)
		SELECT id, gen_random_uuid(), 'Demo resource', now() - interval '1 day' FROM organizations WHERE name = 'Acme Demo'`)
	db.Owner.MustExec(`INSERT INTO resources (org_id, id, name) SELECT id, gen_random_uuid(), 'Newer' FROM organizations WHERE name = 'Acme Demo'`)
	for i := 0; i < 2; i++ {
		if err := demo.SeedFile(ctx, db.App, files, &out); err != nil {
			t.Fatal(err)
		}
	}
	var got struct {
		N      int    `db:"n"`
		Status string `db:"status"`
		Res    string `db:"name"`
		Usage  int64  `db:"usage"`
	}
	err = db.Owner.Get(&got, `SELECT count(*) OVER () AS n, f.status, r.name,
		GREATEST(coalesce((SELECT value FROM usage_counters WHERE org_id = f.org_id AND metric = 'storage_bytes'), 0) + coalesce((SELECT sum(delta) FROM usage_deltas WHERE org_id = f.org_id AND metric = 'storage_bytes'), 0), 0)::bigint AS usage
		FROM files f JOIN resources r ON r.org_id = f.org_id AND r.id = f.resource_id`)
	if err != nil || got.N != 1 || got.Status != "ready" || got.Res != "Demo resource" || got.Usage != int64(len(demo.FileBody)) {
		t.Fatalf("demo files %+v (%v)\n%s", got, err, out.String())
	}
}
