package tenant

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
)

// Page is a list request: Limit 1..100 and an opaque cursor from a previous
// page's next cursor.
type Page struct {
	Limit  int
	Cursor string
}

// Cursor is a keyset position: the last row's time and ID.
type Cursor struct {
	At time.Time
	ID uuid.UUID
}

// ParseCursor decodes a cursor made by EncodeCursor; nil for "".
func ParseCursor(c string) (*Cursor, error) {
	if c == "" {
		return nil, nil
	}
	bad := apperr.Validation(apperr.FieldError{Field: "cursor", Message: "is not a cursor this API returned"})
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, bad
	}
	at, id, ok := strings.Cut(string(b), "|")
	if !ok {
		return nil, bad
	}
	t, err1 := time.Parse(time.RFC3339Nano, at)
	u, err2 := uuid.Parse(id)
	if err1 != nil || err2 != nil {
		return nil, bad
	}
	return &Cursor{At: t, ID: u}, nil
}

// EncodeCursor makes the cursor that continues after a row.
func EncodeCursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id.String()))
}

// List runs one keyset page of a tenant list for a caller holding at least
// min, inside InOrg: fetch is asked for one row more than the page holds, to
// learn whether a next page exists, and key gives a row's (time, id) for the
// next cursor.
func List[T any](ctx context.Context, db *sqlx.DB, p *Principal, pg Page, min string,
	fetch func(tx *sqlx.Tx, after *Cursor, limit int) ([]T, error), key func(*T) (time.Time, uuid.UUID)) ([]T, string, error) {
	after, err := ParseCursor(pg.Cursor)
	if err != nil {
		return nil, "", err
	}
	var rows []T
	err = InOrg(ctx, db, p, min, func(tx *sqlx.Tx, _ string) error {
		rows, err = fetch(tx, after, pg.Limit+1)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if pg.Limit > 0 && len(rows) > pg.Limit {
		rows = rows[:pg.Limit]
		next = EncodeCursor(key(&rows[len(rows)-1]))
	}
	return rows, next, nil
}

// Keyset completes base (a SELECT whose WHERE binds org_id to $1) into one
// page ordered by key ("time_col, id_col"), ascending or descending, that
// starts after the cursor; limit is clamped to 1..1000 (20 when out of
// range). Stores build their list queries with it, so every list pages the
// same way and stays an index range scan.
func Keyset(base, key string, desc bool, orgID uuid.UUID, after *Cursor, limit int) (string, []any) {
	if limit <= 0 || limit > 1000 {
		limit = 20
	}
	cmp, dir := ">", ""
	if desc {
		cmp, dir = "<", " DESC"
	}
	col, id, _ := strings.Cut(key, ", ")
	q, args := base, []any{orgID}
	if after != nil {
		q += ` AND (` + key + `) ` + cmp + ` ($2, $3)`
		args = append(args, after.At, after.ID)
	}
	return q + ` ORDER BY ` + col + dir + `, ` + id + dir + ` LIMIT ` + strconv.Itoa(limit), args
}
