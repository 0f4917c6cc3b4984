package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/platform/s3test"
)

// files cors sets the bucket's CORS rule for the app's origins through the
// S3 API (make dev and the browser tests run it) and says what it set.
func TestFilesCORS(t *testing.T) {
	srv := s3test.Start(t, "keel-files")
	for k, v := range map[string]string{"S3_ENDPOINT": srv.Endpoint, "S3_BUCKET": srv.Bucket, "S3_REGION": "us-east-1",
		"S3_ACCESS_KEY_ID": s3test.AccessKey, "S3_SECRET_ACCESS_KEY": s3test.SecretKey} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"files", "cors", "http://127.0.0.1:5173", "https://app.example.com"}, &out); err != nil {
		t.Fatal(err)
	}
	if want := "bucket keel-files: CORS allows http://127.0.0.1:5173, https://app.example.com to PUT, GET, HEAD with headers Content-Type, If-None-Match"; !strings.Contains(out.String(), want) {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if got, err := srv.Client.CORSOrigins(ctx, srv.Bucket); err != nil || !slices.Equal(got, []string{"http://127.0.0.1:5173", "https://app.example.com"}) {
		t.Errorf("stored origins %v, %v", got, err)
	}
	if err := run(ctx, []string{"files", "cors"}, &out); !errors.Is(err, errUsage) {
		t.Errorf("without an origin: %v", err)
	}
	if err := run(ctx, []string{"files", "cors", "app.example.com"}, &out); err == nil || !strings.Contains(err.Error(), "scheme://host") {
		t.Errorf("an origin without a scheme: %v", err)
	}
}
