package httpapi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/resource"
)

// TestResourcePageJSON: the list's written-out encoder gives encoding/json's
// bytes for the same page (attributes compacted on both sides), for names
// with every kind of character JSON and HTML escaping treat specially,
// invalid UTF-8 included, with and without the optional fields. (Inside
// attributes encoding/json would also escape <, > and &; the encoder leaves
// PostgreSQL's text as it is, which is the same JSON value.)
func TestResourcePageJSON(t *testing.T) {
	gin.SetMode(gin.TestMode)
	tricky := []string{"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\r\b\f",
		"\x00\x01\x1f\x7f", "naïve café – 東京 🚀", "line\u2028sep\u2029", "bad \xff\xfe utf8 \xe2\x82", strings.Repeat("é", 300)}
	rng := rand.New(rand.NewPCG(1, 2))
	var rows []resource.Resource
	for i := range 200 {
		r := resource.Resource{ID: uuid.New(), OrgID: uuid.New(), Name: tricky[i%len(tricky)], Description: tricky[(i*7)%len(tricky)],
			Status: "active", Attributes: json.RawMessage(`{"a": 1, "b": [true, null, "x-y"], "c": {"d": "é"}}`),
			Version: rng.Int64N(1 << 40), CreatedAt: time.Unix(rng.Int64N(2e9), rng.Int64N(1e9)).In(time.FixedZone("x", 3600)),
			UpdatedAt: time.Unix(rng.Int64N(2e9), 0)}
		if i%3 == 0 {
			id := uuid.New()
			r.CreatedByUserID = &id
		}
		if i%5 == 0 {
			id := uuid.New()
			r.CreatedByAPIKeyID = &id
		}
		if i%11 == 0 {
			// Random bytes as a name: whatever a client managed to store.
			buf := make([]byte, 40)
			for j := range buf {
				buf[j] = byte(rng.IntN(256))
			}
			r.Name = string(buf)
		}
		rows = append(rows, r)
	}
	for _, next := range []string{"", "eyJrIjoi<&>"} {
		for _, n := range []int{0, 1, len(rows)} {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			writeResourcePage(c, rows[:n], next)
			got := compact(t, w.Body.Bytes())

			out := make([]resourceResponse, n)
			for i := range out {
				out[i] = toResource(&rows[i])
			}
			body := gin.H{"data": out}
			if next != "" {
				body["next_cursor"] = next
			}
			want, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d rows, next %q:\n got %.400s\nwant %.400s", n, next, got, want)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Fatalf("content type %q", ct)
			}
		}
	}
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("not JSON: %v\n%.400s", err, b)
	}
	return out.Bytes()
}
