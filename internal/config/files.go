package config

import (
	"mime"
	"slices"
	"strings"

	"github.com/keelhq/keel/internal/file/filepolicy"
)

// Files is where file uploads go and what they may be. An empty Bucket
// leaves file storage off: the file endpoints that need an object answer
// 503 storage_not_configured.
type Files struct {
	S3     S3
	Bucket string // S3_BUCKET
	// MaxBytes bounds one file (FILES_MAX_BYTES); at most 5 GiB, S3's
	// limit for one PUT.
	MaxBytes int64
	// AllowedTypes are the media types a file may be (FILES_ALLOWED_TYPES).
	AllowedTypes []string
}

// Policy is the files service's upload policy.
func (f Files) Policy() filepolicy.Policy {
	return filepolicy.Policy{MaxBytes: f.MaxBytes, AllowedTypes: f.AllowedTypes}
}

func loadFiles(l *Loader) Files {
	f := Files{
		S3:           loadS3(l),
		Bucket:       l.String("S3_BUCKET", ""),
		MaxBytes:     int64(l.Int("FILES_MAX_BYTES", int(filepolicy.DefaultMaxBytes), 1, 5<<30)),
		AllowedTypes: l.List("FILES_ALLOWED_TYPES"),
	}
	if f.Bucket != "" && !bucketName.MatchString(f.Bucket) {
		l.fail("S3_BUCKET", "must be a bucket name (3-63 lowercase letters, digits, dots, hyphens), got %q", f.Bucket)
	}
	if f.AllowedTypes == nil {
		f.AllowedTypes = slices.Clone(filepolicy.DefaultAllowedTypes)
	}
	for i, t := range f.AllowedTypes {
		mt, params, err := mime.ParseMediaType(t)
		if err != nil || len(params) > 0 || !strings.Contains(mt, "/") || strings.Contains(mt, "*") {
			l.fail("FILES_ALLOWED_TYPES", "must be media types such as image/png,application/pdf (no wildcards or parameters), got %q", t)
			continue
		}
		f.AllowedTypes[i] = mt
	}
	return f
}

// Files reads where `keelctl seed-demo` stores its demo file.
func (c *Ctl) Files() (Files, error) {
	l := NewLoader(c.l.get)
	f := loadFiles(l)
	return f, l.Err()
}

// Plans reads the plan catalog (PLANS_FILE) for commands that count usage.
func (c *Ctl) Plans() (Plans, error) {
	l := NewLoader(c.l.get)
	p := loadPlans(l)
	return p, l.Err()
}
