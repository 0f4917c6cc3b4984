package main

import (
	"context"
	"fmt"
	"io"

	"github.com/jmoiron/sqlx"
	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/file/filedb"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/platform/s3"
)

const filesUsage = `  files create-bucket
                   create S3_BUCKET on the S3 server unless it exists (make dev
                   runs it against its local versitygw)
`

func runFiles(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	if len(args) != 1 || args[0] != "create-bucket" {
		return fmt.Errorf("%w: files needs create-bucket", errUsage)
	}
	fc, err := cfg.Files()
	if err != nil {
		return err
	}
	if fc.Bucket == "" {
		return fmt.Errorf("S3_BUCKET is not set")
	}
	c, err := s3.New(ctx, s3.Config(fc.S3))
	if err != nil {
		return err
	}
	created, err := c.EnsureBucket(ctx, fc.Bucket)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(out, "created bucket %s\n", fc.Bucket)
	} else {
		fmt.Fprintf(out, "bucket %s exists\n", fc.Bucket)
	}
	return nil
}

// demoFiles is the files service seed-demo stores its demo file with; nil
// when S3_BUCKET is unset.
func demoFiles(ctx context.Context, cfg *config.Ctl, db *sqlx.DB) (*file.Service, error) {
	fc, err := cfg.Files()
	if err != nil || fc.Bucket == "" {
		return nil, err
	}
	c, err := s3.New(ctx, s3.Config(fc.S3))
	if err != nil {
		return nil, err
	}
	pc, err := cfg.Plans()
	if err != nil {
		return nil, err
	}
	cat := pc.Catalog
	return &file.Service{DB: db, Store: filedb.Store{}, Objects: s3.Bucket{Client: c, Name: fc.Bucket}, Policy: fc.Policy(),
		Limiter: plandb.NewLimiter(cat)}, nil
}
