package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3's multipart limits.
const (
	MinPartSize = 5 << 20 // every part but the last
	MaxPartSize = 5 << 30
	MaxParts    = 10_000
)

// Stream defaults: 16 MiB × 4 holds at most 64 MiB of an upload in memory,
// and 16 MiB × 10,000 parts allows a 156 GiB object.
const (
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 4
)

// StreamOptions tunes UploadStream. Zero fields take the defaults.
type StreamOptions struct {
	// PartSize is how much of the stream each part holds, at least
	// MinPartSize; the object can be at most PartSize × MaxParts.
	PartSize int64
	// Concurrency is how many parts may be held and sent at once. Memory is
	// bounded by PartSize × Concurrency: the reader waits for a free buffer.
	Concurrency int
	ContentType string
}

// Uploaded is what UploadStream stored.
type Uploaded struct {
	Bucket string
	Key    string
	Size   int64
	Parts  int
	ETag   string
}

// ErrAborted is wrapped by UploadStream's error when the upload was aborted
// and S3 confirmed it: nothing is stored under the key and no parts are
// left billed.
var ErrAborted = errors.New("multipart upload aborted")

// UploadStream stores what r yields under key with a multipart upload, so a
// stream of unknown length (pg_dump's output) needs neither a temporary
// file nor more memory than PartSize × Concurrency. The object appears only
// when the whole stream was read to EOF and every part stored; a read error
// from r (a failed producer closes its pipe with an error), a failed part or
// an ended ctx aborts the upload, leaving no object and no parts. The abort
// outlives ctx's cancellation so a stopped worker cleans up too.
func (c *Client) UploadStream(ctx context.Context, bucket, key string, r io.Reader, o StreamOptions) (Uploaded, error) {
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.PartSize < MinPartSize || o.PartSize > MaxPartSize {
		return Uploaded{}, fmt.Errorf("s3: part size %d is outside S3's %d..%d", o.PartSize, MinPartSize, MaxPartSize)
	}
	where := "s3://" + bucket + "/" + key
	in := &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if o.ContentType != "" {
		in.ContentType = aws.String(o.ContentType)
	}
	if c.Checksums {
		// What the SDK's own upload manager does where checksums are on:
		// parts then carry CRC32s that S3 checks and combines.
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	created, err := c.S3.CreateMultipartUpload(ctx, in)
	if err != nil {
		return Uploaded{}, fmt.Errorf("s3: start multipart upload %s: %w", where, err)
	}
	u := &multipart{c: c, bucket: bucket, key: key, id: aws.ToString(created.UploadId), algo: in.ChecksumAlgorithm}
	out, err := u.run(ctx, r, o)
	if err != nil {
		return Uploaded{}, fmt.Errorf("s3: upload %s: %w", where, u.abort(ctx, err))
	}
	return out, nil
}

type multipart struct {
	c           *Client
	bucket, key string
	id          string
	algo        types.ChecksumAlgorithm

	mu    sync.Mutex
	parts []types.CompletedPart
	err   error
}

func (u *multipart) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
	}
}

func (u *multipart) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// run reads parts into a fixed set of buffers and sends each on its own
// goroutine; a buffer returns to the set when its part is stored.
func (u *multipart) run(ctx context.Context, r io.Reader, o StreamOptions) (Uploaded, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := make(chan []byte, o.Concurrency)
	for range o.Concurrency {
		free <- nil // allocated on first use: a small stream needs one buffer
	}
	var wg sync.WaitGroup
	var size int64
	num := int32(0)
	for {
		var buf []byte
		select {
		case buf = <-free:
		case <-ctx.Done():
		}
		if err := u.failed(); err != nil {
			break
		}
		if ctx.Err() != nil {
			u.fail(ctx.Err())
			break
		}
		if buf == nil {
			buf = make([]byte, o.PartSize)
		}
		n, rerr := io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			u.fail(fmt.Errorf("read: %w", rerr))
			break
		}
		// An empty stream still stores one (empty) part, so it makes an
		// empty object; otherwise EOF right after a full part sends nothing.
		if n == 0 && num > 0 {
			break
		}
		num++
		if num > MaxParts {
			u.fail(fmt.Errorf("the stream exceeds %d parts of %d bytes: raise the part size", MaxParts, o.PartSize))
			break
		}
		size += int64(n)
		wg.Add(1)
		go func(num int32, buf []byte, n int) {
			defer wg.Done()
			if err := u.send(ctx, num, buf[:n]); err != nil {
				u.fail(err)
				cancel()
			}
			free <- buf
		}(num, buf, n)
		if rerr != nil { // EOF: that was the last part
			break
		}
	}
	wg.Wait()
	if err := u.failed(); err != nil {
		return Uploaded{}, err
	}
	slices.SortFunc(u.parts, func(a, b types.CompletedPart) int { return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber)) })
	done, err := u.c.S3.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
	})
	if err != nil {
		return Uploaded{}, fmt.Errorf("complete: %w", err)
	}
	return Uploaded{Bucket: u.bucket, Key: u.key, Size: size, Parts: len(u.parts), ETag: strings.Trim(aws.ToString(done.ETag), `"`)}, nil
}

func (u *multipart) send(ctx context.Context, num int32, body []byte) error {
	in := &awss3.UploadPartInput{Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id),
		PartNumber: aws.Int32(num), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
		ChecksumAlgorithm: u.algo}
	out, err := u.c.S3.UploadPart(ctx, in)
	if err != nil {
		return fmt.Errorf("part %d: %w", num, err)
	}
	u.mu.Lock()
	u.parts = append(u.parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	u.mu.Unlock()
	return nil
}

// abort ends the upload after cause and returns cause, wrapping ErrAborted
// when S3 confirmed the abort, or naming the upload left behind.
func (u *multipart) abort(ctx context.Context, cause error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	_, err := u.c.S3.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{
		Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id)})
	if err != nil {
		return fmt.Errorf("%w; aborting upload %s also failed (its parts stay until a lifecycle rule removes incomplete uploads): %v", cause, u.id, err)
	}
	return fmt.Errorf("%w (%w, nothing stored)", cause, ErrAborted)
}

// Uploads lists the multipart uploads in progress under prefix: parts
// stored and billed, but no object.
func (c *Client) Uploads(ctx context.Context, bucket, prefix string) ([]string, error) {
	out, err := c.S3.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		return nil, fmt.Errorf("s3: list uploads s3://%s/%s: %w", bucket, prefix, err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys, nil
}

// List returns every object under prefix, reading every page; folder
// markers (keys ending in "/") are not objects.
func (c *Client) List(ctx context.Context, bucket, prefix string) ([]Object, error) {
	var out []Object
	in := &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
	if c.PageSize > 0 {
		in.MaxKeys = aws.Int32(c.PageSize)
	}
	p := awss3.NewListObjectsV2Paginator(c.S3, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3: list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasSuffix(key, "/") {
				continue
			}
			out = append(out, Object{Bucket: bucket, Key: key, Size: aws.ToInt64(o.Size), LastModified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

// Delete removes key from bucket; a key already gone is no error.
func (c *Client) Delete(ctx context.Context, bucket, key string) error {
	return Bucket{Client: c, Name: bucket}.Delete(ctx, key)
}
