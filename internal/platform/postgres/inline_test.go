package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestInline(t *testing.T) {
	id := uuid.MustParse("01a21e2c-7711-7eca-9097-39296a0755c6")
	at := time.Date(2026, 11, 27, 8, 0, 0, 123456000, time.UTC)
	got, err := postgres.Inline(`SELECT '$1', "$2" /* $4 /* $5 */ $6 */ -- $3
		FROM t WHERE a = $1 AND b = $2 AND (c, d) < ($3, $10) AND e = $4 AND f IS $5 AND g = $6 AND h = $7 AND i = $8 AND j = $9`,
		[]any{id, "it's", at, 42, nil, true, []byte{0xde, 0xad}, (*uuid.UUID)(nil), int64(-7), `a\b`})
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT '$1', "$2" /* $4 /* $5 */ $6 */ -- $3
		FROM t WHERE a = '01a21e2c-7711-7eca-9097-39296a0755c6'::uuid AND b = 'it''s' AND (c, d) < ('2026-11-27T08:00:00.123456Z'::timestamptz,  E'a\\b') AND e = 42 AND f IS NULL AND g = true AND h = '\xdead'::bytea AND i = NULL::uuid AND j = -7`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []struct {
		q    string
		args []any
	}{
		{`SELECT $2`, []any{1}},
		{`SELECT $1`, []any{struct{}{}}},
		{`SELECT $1`, []any{"nul\x00"}},
		{`SELECT 'open $1`, []any{1}},
		{`SELECT /* open $1`, []any{1}},
	} {
		if _, err := postgres.Inline(bad.q, bad.args); err == nil {
			t.Errorf("Inline(%q, %v) passed", bad.q, bad.args)
		}
	}
}

// What Inline writes reads back as the values it was given, whatever a
// string holds: quotes, backslashes, newlines and dollar signs.
func TestInlineRoundTrip(t *testing.T) {
	db := postgrestest.New(t)
	for _, s := range []string{`it's`, `back\slash`, "new\nline", `$1 $$ $tag$`, `'; DROP TABLE users; --`, "é😀"} {
		q, err := postgres.Inline(`SELECT $1::text`, []any{s})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := db.App.QueryRowxContext(context.Background(), q).Scan(&got); err != nil {
			t.Fatalf("%q: %v (%s)", s, err, q)
		}
		if got != s {
			t.Fatalf("%q came back as %q (%s)", s, got, q)
		}
	}
}
