package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

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
  files cors ORIGIN...
                   set S3_BUCKET's CORS rules so pages on ORIGIN (the web app's,
                   e.g. https://app.example.com) may upload to presigned URLs and
                   download (replaces the bucket's CORS configuration; MinIO has
                   no bucket CORS API: set MINIO_API_CORS_ALLOW_ORIGIN there)
`

func runFiles(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "create-bucket":
	case len(args) >= 2 && args[0] == "cors":
	default:
		return fmt.Errorf("%w: files needs create-bucket, or cors with one or more origins", errUsage)
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
	if args[0] == "cors" {
		if err := c.SetCORS(ctx, fc.Bucket, args[1:]); errors.Is(err, s3.ErrCORSNotSupported) {
			return fmt.Errorf("%w: on MinIO set MINIO_API_CORS_ALLOW_ORIGIN to the app's origins instead", err)
		} else if err != nil {
			return err
		}
		origins, err := c.CORSOrigins(ctx, fc.Bucket)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "bucket %s: CORS allows %s to %s with headers %s\n", fc.Bucket, strings.Join(origins, ", "),
			strings.Join(s3.CORSMethods, ", "), strings.Join(s3.CORSAllowedHeaders, ", "))
		return nil
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
