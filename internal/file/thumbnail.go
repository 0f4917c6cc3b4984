package file

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// ThumbnailSize is the longest side of a thumbnail, in pixels.
const ThumbnailSize = 256

// DefaultMaxPixels bounds the images decoded for a thumbnail: 25
// megapixels (a 6000 × 4000 photo), some 100 MB as RGBA and 200 MB for a
// 16-bit PNG. The header says an image's size before
// any pixel is decoded, so a small file claiming a huge image (a
// decompression bomb) is refused from its header; the file itself stays
// ready, without a thumbnail.
const DefaultMaxPixels = 25_000_000

// maxHeader bounds the bytes read to find an image's size (a JPEG may put
// metadata before it); past this there is no thumbnail.
const maxHeader = 1 << 20

func (s *Service) maxPixels() int64 {
	if s.MaxPixels > 0 {
		return s.MaxPixels
	}
	return DefaultMaxPixels
}

// thumbnail is an encoded thumbnail.
type thumbnail struct {
	contentType string
	body        []byte
}

type decoder struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// Decoders by format name as image.DecodeConfig reports it, registered
// here explicitly rather than through blank imports, so only these are
// tried.
var decoders = map[string]decoder{
	"png":  {png.DecodeConfig, png.Decode},
	"jpeg": {jpeg.DecodeConfig, jpeg.Decode},
	"gif":  {gif.DecodeConfig, gif.Decode}, // the first frame
	"webp": {webp.DecodeConfig, webp.Decode},
}

var errTooBig = errors.New("image too large to thumbnail")

// makeThumbnail decodes the image r starts with and returns it scaled so
// its longest side is at most ThumbnailSize: PNG when the source may be
// transparent, JPEG otherwise. It reads the header first and refuses an
// image of more than maxPixels pixels before decoding any.
func makeThumbnail(r io.Reader, maxPixels int64) (*thumbnail, error) {
	var header bytes.Buffer
	cfg, format, err := image.DecodeConfig(io.TeeReader(io.LimitReader(r, maxHeader), &header))
	if err != nil {
		return nil, fmt.Errorf("image header: %w", err)
	}
	dec, ok := decoders[format]
	if !ok {
		return nil, fmt.Errorf("no decoder for %s", format)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, fmt.Errorf("%w: %dx%d", errTooBig, cfg.Width, cfg.Height)
	}
	img, err := dec.decode(io.MultiReader(&header, r))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", format, err)
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > ThumbnailSize || h > ThumbnailSize {
		if w >= h {
			w, h = ThumbnailSize, max(1, h*ThumbnailSize/b.Dx())
		} else {
			w, h = max(1, w*ThumbnailSize/b.Dy()), ThumbnailSize
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	xdraw.CatmullRom.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	var out bytes.Buffer
	if format == "jpeg" {
		if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 85}); err != nil {
			return nil, err
		}
		return &thumbnail{contentType: "image/jpeg", body: out.Bytes()}, nil
	}
	if err := png.Encode(&out, dst); err != nil {
		return nil, err
	}
	return &thumbnail{contentType: "image/png", body: out.Bytes()}, nil
}
