package httpapi

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/resource"
)

// writeResourcePage answers a page of resources as list would, with a
// written-out encoder: encoding/json's reflection over the page, and its
// re-validation of every attributes document, were 15 % of the API's CPU
// on the hot list (docs/benchmarks.md). The output is encoding/json's for
// resourceResponse byte for byte, except that attributes are written as
// PostgreSQL's jsonb output gives them (valid JSON, not compacted);
// TestResourcePageJSON holds the two equal.
func writeResourcePage(c *gin.Context, rows []resource.Resource, next string) {
	bp := pageBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 { // a page of large attributes is not kept
			pageBuffers.Put(bp)
		}
	}()
	b := (*bp)[:0]
	b = append(b, `{"data":[`...)
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendResource(b, &rows[i])
	}
	b = append(b, ']')
	if next != "" {
		b = append(b, `,"next_cursor":`...)
		b = appendJSONString(b, next)
	}
	b = append(b, '}')
	*bp = b
	// With its length known, net/http writes the page in one piece instead
	// of chunks and a terminating write.
	c.Header("Content-Length", strconv.Itoa(len(b)))
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
}

// pageBuffers reuses the pages' buffers: c.Data has written the page
// before writeResourcePage returns.
var pageBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// appendResource appends toResource(r) as JSON.
func appendResource(b []byte, r *resource.Resource) []byte {
	b = append(b, `{"id":`...)
	b = appendUUID(b, r.ID)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, r.Name)
	b = append(b, `,"description":`...)
	b = appendJSONString(b, r.Description)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, r.Status)
	b = append(b, `,"attributes":`...)
	if len(r.Attributes) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, r.Attributes...)
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	if r.CreatedByUserID != nil {
		b = append(b, `,"created_by_user_id":`...)
		b = appendUUID(b, *r.CreatedByUserID)
	}
	if r.CreatedByAPIKeyID != nil {
		b = append(b, `,"created_by_api_key_id":`...)
		b = appendUUID(b, *r.CreatedByAPIKeyID)
	}
	b = append(b, `,"created_at":`...)
	b = appendTime(b, r.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, r.UpdatedAt)
	return append(b, '}')
}

func appendUUID(b []byte, id uuid.UUID) []byte {
	b = append(b, '"')
	b = hex.AppendEncode(b, id[:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[8:10])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[10:])
	return append(b, '"')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes it: HTML's <,
// > and & escaped, control characters as \u00XX (or \n, \r, \t, \b, \f),
// invalid UTF-8 as U+FFFD, and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
