// Package s3 is Keel's adapter to S3 and S3-compatible object stores
// (MinIO, versitygw, Ceph, R2): a client built from configuration, and the
// few bucket operations Keel needs, streamed so objects never sit in memory.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// ErrEmpty means a listing found no objects.
var ErrEmpty = errors.New("no objects")

// Config says how to reach the store.
type Config struct {
	// Endpoint is an S3-compatible server's base URL; empty means AWS. When
	// set, buckets are addressed by path (http://host/bucket/key), which is
	// what self-hosted servers serve without wildcard DNS.
	Endpoint string
	Region   string // default us-east-1
	// AccessKeyID and SecretAccessKey are static credentials; when empty the
	// SDK's default chain (environment, shared files, instance role) applies.
	AccessKeyID     string
	SecretAccessKey string
	// PublicEndpoint is the base URL clients outside the deployment reach
	// the server at, when it differs from Endpoint (a container name, a
	// private address): presigned URLs are signed for it, since the host
	// is part of the signature and cannot be rewritten afterwards. Empty
	// means Endpoint.
	PublicEndpoint string
}

// Client is a configured S3 client.
type Client struct {
	S3 *awss3.Client
	// PageSize caps each listing page; zero takes the server's (1,000 on S3).
	PageSize int32
	// Checksums makes UploadStream ask S3 to check a CRC32 of every part,
	// as the SDK does by default on AWS. New sets it when Endpoint is empty:
	// S3-compatible servers vary in what checksums they accept.
	Checksums bool
	presign   *awss3.PresignClient
}

func (c *Client) presigner() *awss3.PresignClient {
	if c.presign == nil {
		c.presign = awss3.NewPresignClient(c.S3)
	}
	return c.presign
}

// New builds a client from cfg. It does not contact the server.
func New(ctx context.Context, cfg Config) (*Client, error) {
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if cfg.AccessKeyID != "" || cfg.SecretAccessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	if cfg.Endpoint != "" {
		// Many S3-compatible servers reject or mangle the CRC checksums the
		// SDK otherwise sends on every request; send them only where S3
		// requires them.
		opts = append(opts,
			awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load config: %w", err)
	}
	c := awss3.NewFromConfig(ac, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
	})
	public := cfg.PublicEndpoint
	if public == "" {
		public = cfg.Endpoint
	}
	// A presigned URL carries no checksum: the client sending it computes
	// none, so the SDK must not sign one in.
	signer := awss3.NewFromConfig(ac, func(o *awss3.Options) {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		if public != "" {
			o.BaseEndpoint = aws.String(public)
			o.UsePathStyle = true
		}
	})
	return &Client{S3: c, Checksums: cfg.Endpoint == "", presign: awss3.NewPresignClient(signer)}, nil
}

// Object is one stored object.
type Object struct {
	Bucket       string
	Key          string
	Size         int64
	LastModified time.Time
}

// Newest returns the most recently modified object under prefix, reading
// every page of the listing. Folder markers (keys ending in "/") are not
// objects. Among objects modified in the same second (S3's resolution) the
// greatest key wins, so timestamped names break the tie. It returns an error
// wrapping ErrEmpty when there is none.
func (c *Client) Newest(ctx context.Context, bucket, prefix string) (Object, error) {
	all, err := c.List(ctx, bucket, prefix)
	if err != nil {
		return Object{}, err
	}
	var best Object
	for _, o := range all {
		if best.Key == "" || o.LastModified.After(best.LastModified) || (o.LastModified.Equal(best.LastModified) && o.Key > best.Key) {
			best = o
		}
	}
	if best.Key == "" {
		return Object{}, fmt.Errorf("s3://%s/%s: %w", bucket, prefix, ErrEmpty)
	}
	return best, nil
}

// Download streams the object into w and returns how many bytes it wrote.
func (c *Client) Download(ctx context.Context, bucket, key string, w io.Writer) (int64, error) {
	out, err := c.S3.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, fmt.Errorf("s3: get s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	n, err := io.Copy(w, out.Body)
	if err != nil {
		return n, fmt.Errorf("s3: read s3://%s/%s: %w", bucket, key, err)
	}
	return n, nil
}

// Upload stores body under key. body must be seekable (a file): signing
// over plain HTTP hashes the payload before sending it.
func (c *Client) Upload(ctx context.Context, bucket, key string, body io.ReadSeeker) error {
	if _, err := c.S3.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: body}); err != nil {
		return fmt.Errorf("s3: put s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// CreateBucket creates bucket.
func (c *Client) CreateBucket(ctx context.Context, bucket string) error {
	if _, err := c.S3.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("s3: create bucket %s: %w", bucket, err)
	}
	return nil
}
