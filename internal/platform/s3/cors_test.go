package s3_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/s3test"
)

// A page on the allowed origin may PUT a presigned upload (its preflight
// names the headers the signature binds) and GET downloads; another origin
// gets no CORS grant. Checked against versitygw, the tests' S3 server.
func TestSetCORSLetsTheAppsOriginUpload(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, "cors")
	ctx := context.Background()
	if got, err := srv.Client.CORSOrigins(ctx, srv.Bucket); err != nil || len(got) != 0 {
		t.Fatalf("a new bucket's CORS origins: %v, %v", got, err)
	}
	const app = "http://app.example:5173"
	if err := srv.Client.SetCORS(ctx, srv.Bucket, []string{app + "/"}); err != nil {
		t.Fatal(err)
	}
	if got, err := srv.Client.CORSOrigins(ctx, srv.Bucket); err != nil || !slices.Equal(got, []string{app}) {
		t.Fatalf("CORS origins: %v, %v", got, err)
	}
	preflight := func(origin, method, headers string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, srv.Endpoint+"/"+srv.Bucket+"/orgs/x/files/y", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", headers)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res := preflight(app, "PUT", "content-type,if-none-match")
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Fatalf("preflight of the app's PUT: %d %v", res.StatusCode, res.Header)
	}
	if res := preflight("http://evil.example", "PUT", "content-type"); res.StatusCode == 200 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin's preflight: %d %v", res.StatusCode, res.Header)
	}
	if res := preflight(app, "PUT", "content-type,x-amz-acl"); res.StatusCode == 200 {
		t.Fatalf("a header outside the rule was allowed: %d %v", res.StatusCode, res.Header)
	}

	// The upload itself, as the browser sends it, carries the grant.
	b := s3.Bucket{Client: srv.Client, Name: srv.Bucket}
	body := "hello"
	put, err := b.PresignPut(ctx, "orgs/x/files/y", "text/plain", int64(len(body)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, put.URL, strings.NewReader(body))
	req.Header = put.Header.Clone()
	req.Header.Set("Origin", app)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(strings.ToLower(res.Header.Get("Access-Control-Expose-Headers")), "etag") {
		t.Fatalf("the app's PUT: %d %v", res.StatusCode, res.Header)
	}
	if err := srv.Client.SetCORS(ctx, srv.Bucket, []string{"app.example"}); err == nil {
		t.Fatal("an origin without a scheme was accepted")
	}
}

// Origin is where the presigned URLs point: the public endpoint, else the
// endpoint, else AWS's virtual-hosted bucket host.
func TestBucketOrigin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		cfg    s3.Config
		bucket string
		want   string
	}{
		{s3.Config{Endpoint: "http://minio:9000"}, "keel-files", "http://minio:9000"},
		{s3.Config{Endpoint: "http://minio:9000", PublicEndpoint: "http://localhost:9000/"}, "keel-files", "http://localhost:9000"},
		{s3.Config{Region: "eu-west-1"}, "keel-files", "https://keel-files.s3.eu-west-1.amazonaws.com"},
		{s3.Config{}, "keel-files", "https://keel-files.s3.us-east-1.amazonaws.com"},
	} {
		c.cfg.AccessKeyID, c.cfg.SecretAccessKey = "k", "s"
		client, err := s3.New(ctx, c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s3.Bucket{Client: client, Name: c.bucket}.Origin(ctx)
		if err != nil || got != c.want {
			t.Errorf("%+v: origin %q, %v; want %q", c.cfg, got, err, c.want)
		}
	}
}
