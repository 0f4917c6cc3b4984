package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// ErrNotFound means the object does not exist.
var ErrNotFound = errors.New("s3: no such object")

// Presigned is a request a client may send without credentials until
// ExpiresAt: the URL, the method, and the headers it must send exactly as
// given (they are part of the signature).
type Presigned struct {
	URL       string
	Method    string
	Header    http.Header
	ExpiresAt time.Time
}

// Info is what HEAD tells about an object.
type Info struct {
	Size        int64
	ContentType string
	ETag        string
}

// Bucket is one bucket of a Client: the object operations the files
// capability needs, each streamed.
type Bucket struct {
	Client *Client
	Name   string
}

// PresignPut signs a PUT of key valid for ttl, binding contentType and size:
// a request with another Content-Type or Content-Length fails the
// signature check. It also binds `If-None-Match: *`, so the URL writes the
// object once: a second PUT through it (to swap the bytes after they were
// checked) fails with 412.
func (b Bucket) PresignPut(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (Presigned, error) {
	expires := time.Now().Add(ttl)
	r, err := b.Client.presigner().PresignPutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(b.Name), Key: aws.String(key), ContentType: aws.String(contentType), ContentLength: aws.Int64(size),
		IfNoneMatch: aws.String("*"),
	}, awss3.WithPresignExpires(ttl))
	if err != nil {
		return Presigned{}, fmt.Errorf("s3: presign put s3://%s/%s: %w", b.Name, key, err)
	}
	h := r.SignedHeader.Clone()
	h.Del("Host")
	return Presigned{URL: r.URL, Method: r.Method, Header: h, ExpiresAt: expires}, nil
}

// PresignGet signs a GET of key valid for ttl; a non-empty disposition
// becomes the response's Content-Disposition.
func (b Bucket) PresignGet(ctx context.Context, key, disposition string, ttl time.Duration) (Presigned, error) {
	expires := time.Now().Add(ttl)
	in := &awss3.GetObjectInput{Bucket: aws.String(b.Name), Key: aws.String(key)}
	if disposition != "" {
		in.ResponseContentDisposition = aws.String(disposition)
	}
	r, err := b.Client.presigner().PresignGetObject(ctx, in, awss3.WithPresignExpires(ttl))
	if err != nil {
		return Presigned{}, fmt.Errorf("s3: presign get s3://%s/%s: %w", b.Name, key, err)
	}
	h := r.SignedHeader.Clone()
	h.Del("Host")
	return Presigned{URL: r.URL, Method: r.Method, Header: h, ExpiresAt: expires}, nil
}

// Head returns key's size and type, or an error wrapping ErrNotFound.
func (b Bucket) Head(ctx context.Context, key string) (Info, error) {
	out, err := b.Client.S3.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(b.Name), Key: aws.String(key)})
	if err != nil {
		return Info{}, b.wrap("head", key, err)
	}
	return Info{Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType), ETag: aws.ToString(out.ETag)}, nil
}

// Open streams key; the caller closes the body. A missing key is an error
// wrapping ErrNotFound.
func (b Bucket) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := b.Client.S3.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(b.Name), Key: aws.String(key)})
	if err != nil {
		return nil, b.wrap("get", key, err)
	}
	return out.Body, nil
}

// Put stores body under key with contentType.
func (b Bucket) Put(ctx context.Context, key, contentType string, body []byte) error {
	_, err := b.Client.S3.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(b.Name), Key: aws.String(key),
		ContentType: aws.String(contentType), ContentLength: aws.Int64(int64(len(body))), Body: bytes.NewReader(body)})
	if err != nil {
		return b.wrap("put", key, err)
	}
	return nil
}

// Delete removes keys; a key already gone is no error, so a retried delete
// succeeds.
func (b Bucket) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		_, err := b.Client.S3.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(b.Name), Key: aws.String(k)})
		if err = b.wrap("delete", k, err); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// wrap names the operation and maps the "no such key" answers (whose shape
// differs between HEAD, GET and servers) to ErrNotFound.
func (b Bucket) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "404":
			return fmt.Errorf("s3: %s s3://%s/%s: %w", op, b.Name, key, ErrNotFound)
		}
	}
	return fmt.Errorf("s3: %s s3://%s/%s: %w", op, b.Name, key, err)
}

// EnsureBucket creates bucket unless it exists (and is ours), and reports
// whether it created it.
func (c *Client) EnsureBucket(ctx context.Context, bucket string) (bool, error) {
	if _, err := c.S3.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(bucket)}); err == nil {
		return false, nil
	}
	if err := c.CreateBucket(ctx, bucket); err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "BucketAlreadyOwnedByYou" {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
