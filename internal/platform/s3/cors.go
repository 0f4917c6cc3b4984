package s3

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// ErrCORSNotSupported means the server has no per-bucket CORS API (MinIO's
// community server answers NotImplemented: it applies one server-wide
// setting, MINIO_API_CORS_ALLOW_ORIGIN, to every bucket instead).
var ErrCORSNotSupported = errors.New("s3: the server does not support bucket CORS (PutBucketCors)")

// What a browser on an allowed origin may do with the bucket: PUT the bytes
// of a presigned upload, which binds Content-Type and If-None-Match (the
// browser sets Content-Length itself, and CORS does not list it), and GET
// or HEAD downloads and thumbnails. ETag is exposed for clients that want
// the stored object's tag.
var (
	CORSMethods        = []string{"PUT", "GET", "HEAD"}
	CORSAllowedHeaders = []string{"Content-Type", "If-None-Match"}
	CORSExposeHeaders  = []string{"ETag"}
)

// CORSMaxAge is how long a browser may cache a preflight's answer.
const CORSMaxAge = 3600

// SetCORS replaces bucket's CORS configuration with one rule that lets
// pages on origins (scheme://host[:port], e.g. the SPA's
// http://127.0.0.1:5173) upload and download through presigned URLs. It
// returns an error wrapping ErrCORSNotSupported when the server has no
// bucket CORS API.
func (c *Client) SetCORS(ctx context.Context, bucket string, origins []string) error {
	if len(origins) == 0 {
		return errors.New("s3: SetCORS needs at least one origin")
	}
	// Stored as scheme://host[:port]: a trailing slash is dropped.
	trimmed := make([]string, len(origins))
	for i, o := range origins {
		u, err := url.Parse(o)
		if o == "*" {
			trimmed[i] = o
			continue
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("s3: CORS origin %q is not scheme://host[:port]", o)
		}
		trimmed[i] = u.Scheme + "://" + u.Host
	}
	_, err := c.S3.PutBucketCors(ctx, &awss3.PutBucketCorsInput{
		Bucket: aws.String(bucket),
		CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{{
			AllowedOrigins: trimmed,
			AllowedMethods: CORSMethods,
			AllowedHeaders: CORSAllowedHeaders,
			ExposeHeaders:  CORSExposeHeaders,
			MaxAgeSeconds:  aws.Int32(CORSMaxAge),
		}}},
	})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NotImplemented" {
			return fmt.Errorf("s3: put CORS of bucket %s: %w", bucket, ErrCORSNotSupported)
		}
		return fmt.Errorf("s3: put CORS of bucket %s: %w", bucket, err)
	}
	return nil
}

// CORSOrigins returns the origins bucket's CORS rules allow, in order; none
// when the bucket has no CORS configuration.
func (c *Client) CORSOrigins(ctx context.Context, bucket string) ([]string, error) {
	out, err := c.S3.GetBucketCors(ctx, &awss3.GetBucketCorsInput{Bucket: aws.String(bucket)})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchCORSConfiguration" {
			return nil, nil
		}
		return nil, fmt.Errorf("s3: get CORS of bucket %s: %w", bucket, err)
	}
	var origins []string
	for _, r := range out.CORSRules {
		origins = append(origins, r.AllowedOrigins...)
	}
	return origins, nil
}

// Origin is the origin (scheme://host[:port]) of the presigned URLs this
// bucket hands out, which browsers fetch: the public endpoint's, else the
// endpoint's, else AWS's virtual-hosted https://BUCKET.s3.REGION.amazonaws.com
// (the SDK's choice, read from a URL it signs; nothing is sent). The app's
// Content-Security-Policy lists it so pages may upload and show thumbnails.
func (b Bucket) Origin(ctx context.Context) (string, error) {
	r, err := b.Client.presigner().PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(b.Name), Key: aws.String("origin")})
	if err != nil {
		return "", fmt.Errorf("s3: origin of bucket %s: %w", b.Name, err)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return "", fmt.Errorf("s3: origin of bucket %s: %w", b.Name, err)
	}
	return u.Scheme + "://" + u.Host, nil
}
