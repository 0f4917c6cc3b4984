package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/file/filepolicy"
)

func TestFilesConfig(t *testing.T) {
	t.Parallel()
	c, err := LoadAPI(apiEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Files.Bucket != "" || c.Files.MaxBytes != filepolicy.DefaultMaxBytes || !slices.Equal(c.Files.AllowedTypes, filepolicy.DefaultAllowedTypes) {
		t.Fatalf("defaults: %+v", c.Files)
	}
	c, err = LoadAPI(apiEnv(map[string]string{"S3_BUCKET": "keel-files", "FILES_MAX_BYTES": "1048576",
		"FILES_ALLOWED_TYPES": "Image/PNG, text/plain", "S3_ENDPOINT": "http://minio:9000", "S3_PUBLIC_ENDPOINT": "http://localhost:9000"}))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Files.Policy()
	if c.Files.Bucket != "keel-files" || p.MaxBytes != 1<<20 || !slices.Equal(p.AllowedTypes, []string{"image/png", "text/plain"}) ||
		c.Files.S3.PublicEndpoint != "http://localhost:9000" {
		t.Fatalf("set: %+v", c.Files)
	}
	// The defaults are not changed by a load that lowercases its own list.
	if filepolicy.DefaultAllowedTypes[0] != "image/png" {
		t.Fatal("defaults modified")
	}
	for want, env := range map[string]map[string]string{
		"S3_BUCKET must be a bucket name":         {"S3_BUCKET": "Keel_Files"},
		"FILES_MAX_BYTES must be a whole number":  {"FILES_MAX_BYTES": "6000000000"},
		"FILES_ALLOWED_TYPES must be media types": {"FILES_ALLOWED_TYPES": "image/*"},
		"S3_PUBLIC_ENDPOINT must be a URL":        {"S3_PUBLIC_ENDPOINT": "localhost:9000"},
	} {
		for _, load := range []func() error{
			func() error { _, err := LoadAPI(apiEnv(env)); return err },
			func() error { _, err := LoadWorker(apiEnv(env)); return err },
		} {
			if err := load(); err == nil || !strings.Contains(err.Error(), strings.SplitN(want, " ", 2)[0]) ||
				!strings.Contains(err.Error(), strings.SplitN(want, " ", 2)[1]) {
				t.Errorf("%v: got %v, want %q", env, err, want)
			}
		}
	}
}
