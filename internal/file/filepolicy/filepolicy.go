// Package filepolicy is what uploads may be: the file service enforces it,
// the configuration reads it (FILES_MAX_BYTES, FILES_ALLOWED_TYPES). A leaf,
// so reading configuration does not pull in the S3 client and the image
// codecs the file service needs.
package filepolicy

// DefaultAllowedTypes are the types FILES_ALLOWED_TYPES defaults to.
var DefaultAllowedTypes = []string{"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf",
	"text/plain", "text/csv", "application/json", "application/zip"}

// DefaultMaxBytes is FILES_MAX_BYTES's default: 100 MiB.
const DefaultMaxBytes int64 = 100 << 20

// Policy is what uploads may be.
type Policy struct {
	// MaxBytes bounds a file's size; zero means DefaultMaxBytes.
	MaxBytes int64
	// AllowedTypes are the media types a file may be declared as and
	// sniffed as; nil means DefaultAllowedTypes.
	AllowedTypes []string
}

// Limit is the largest size a file may have.
func (p Policy) Limit() int64 {
	if p.MaxBytes > 0 {
		return p.MaxBytes
	}
	return DefaultMaxBytes
}

// Allowed are the media types a file may be.
func (p Policy) Allowed() []string {
	if p.AllowedTypes != nil {
		return p.AllowedTypes
	}
	return DefaultAllowedTypes
}
