package tenant

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
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

// Cursor is a keyset position: the last row's sort key and ID. Lists with
// one order key on a time (At). Lists a client may sort (ListSorted) also
// record the sort the cursor continues, and key either on a time (At) or on
// text (Text, when IsText).
type Cursor struct {
	At time.Time
	ID uuid.UUID
	// Sort is the order the cursor was made for ("-created_at", "name");
	// empty for lists with a single order.
	Sort   string
	Text   string
	IsText bool
}

// Key returns the cursor's sort key: Text for a text key, At otherwise.
func (c *Cursor) Key() any {
	if c.IsText {
		return c.Text
	}
	return c.At
}

// errBadCursor answers a cursor this API did not make.
var errBadCursor = apperr.Validation(apperr.FieldError{Field: "cursor", Message: "is not a cursor this API returned"})

// ParseCursor decodes a cursor made by EncodeCursor; nil for "".
func ParseCursor(c string) (*Cursor, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, errBadCursor
	}
	at, id, ok := strings.Cut(string(b), "|")
	if !ok {
		return nil, errBadCursor
	}
	t, err1 := time.Parse(time.RFC3339Nano, at)
	u, err2 := uuid.Parse(id)
	if err1 != nil || err2 != nil {
		return nil, errBadCursor
	}
	return &Cursor{At: t, ID: u}, nil
}

// EncodeCursor makes the cursor that continues after a row.
func EncodeCursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id.String()))
}

// Sort is the order a client picked for a list: a field, ascending, or
// descending when written with a leading "-" ("-created_at").
type Sort struct {
	Field string
	Desc  bool
}

// String is the sort as the API spells it.
func (s Sort) String() string {
	if s.Desc {
		return "-" + s.Field
	}
	return s.Field
}

// ParseSort reads a sort parameter: one of fields, ascending or with a
// leading "-" descending; "" gives def.
func ParseSort(v string, fields []string, def Sort) (Sort, error) {
	if v == "" {
		return def, nil
	}
	s := Sort{Field: strings.TrimPrefix(v, "-"), Desc: strings.HasPrefix(v, "-")}
	for _, f := range fields {
		if f == s.Field {
			return s, nil
		}
	}
	return Sort{}, apperr.Validation(apperr.FieldError{Field: "sort",
		Message: "must be one of " + strings.Join(fields, ", ") + ", each optionally prefixed with - for descending"})
}

// sortedCursor is the encoded form of a Cursor of a sorted list.
type sortedCursor struct {
	Sort string     `json:"o"`
	At   *time.Time `json:"t,omitempty"`
	Text *string    `json:"s,omitempty"`
	ID   uuid.UUID  `json:"i"`
}

// EncodeSortedCursor makes the cursor that continues a list sorted by
// c.Sort after the row whose key and ID c holds.
func EncodeSortedCursor(c Cursor) string {
	sc := sortedCursor{Sort: c.Sort, ID: c.ID}
	if c.IsText {
		sc.Text = &c.Text
	} else {
		at := c.At.UTC()
		sc.At = &at
	}
	b, _ := json.Marshal(sc)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseSortedCursor decodes a cursor made by EncodeSortedCursor for sort;
// nil for "". A cursor of another sort is refused: its key would be read as
// the wrong column, silently skipping or repeating rows.
func ParseSortedCursor(c string, sort Sort) (*Cursor, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, errBadCursor
	}
	var sc sortedCursor
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil || sc.ID == uuid.Nil || (sc.At == nil) == (sc.Text == nil) {
		return nil, errBadCursor
	}
	// A forged text key with a NUL could never have come from a row (text
	// columns cannot hold one) and would fail the query as a 500.
	if sc.Text != nil && strings.IndexByte(*sc.Text, 0) >= 0 {
		return nil, errBadCursor
	}
	if sc.Sort != sort.String() {
		return nil, apperr.Validation(apperr.FieldError{Field: "cursor",
			Message: "continues a list sorted by " + sc.Sort + ", not " + sort.String() + "; start again without a cursor"})
	}
	out := &Cursor{Sort: sc.Sort, ID: sc.ID}
	if sc.Text != nil {
		out.Text, out.IsText = *sc.Text, true
	} else {
		out.At = *sc.At
	}
	return out, nil
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
	return trimPage(rows, pg.Limit, func(r *T) string { return EncodeCursor(key(r)) })
}

// ListSorted is List for a list the client sorts: the cursor carries the
// sort it continues (a cursor of another sort is refused) and a time or
// text key, which key gives for a row (At, or Text with IsText, and ID).
// fetch runs one query on the Querier it gets, which sends the tenant
// setting, InOrg's caller check and the query in one round trip (see
// oneTrip); a fetch that needs several statements belongs in List.
func ListSorted[T any](ctx context.Context, db *sqlx.DB, p *Principal, pg Page, sort Sort, min string,
	fetch func(q Querier, after *Cursor, limit int) ([]T, error), key func(*T) Cursor) ([]T, string, error) {
	after, err := ParseSortedCursor(pg.Cursor, sort)
	if err != nil {
		return nil, "", err
	}
	return listPage(ctx, db, p, pg.Limit, min, after, fetch, func(r *T) string {
		c := key(r)
		c.Sort = sort.String()
		return EncodeSortedCursor(c)
	})
}

func listPage[T any](ctx context.Context, db *sqlx.DB, p *Principal, limit int, min string, after *Cursor,
	fetch func(q Querier, after *Cursor, limit int) ([]T, error), encode func(*T) string) ([]T, string, error) {
	if db == nil {
		return nil, "", errNoDatabase
	}
	if p == nil || p.OrgID == uuid.Nil {
		return nil, "", ErrNoOrg
	}
	if p.SupportAccess() {
		// Support access is audited in the transaction of each read
		// (InOrg), which the one-trip read has no room for.
		var rows []T
		err := InOrg(ctx, db, p, min, func(tx *sqlx.Tx, _ string) error {
			var err error
			rows, err = fetch(tx, after, limit+1)
			return err
		})
		if err != nil {
			return nil, "", err
		}
		return trimPage(rows, limit, encode)
	}
	o := &oneTrip{db: db, p: p, min: min}
	rows, err := fetch(o, after, limit+1)
	o.close(err)
	if err != nil {
		return nil, "", err
	}
	return trimPage(rows, limit, encode)
}

// trimPage cuts the extra row a fetch was asked for and makes the next
// cursor from the last row kept.
func trimPage[T any](rows []T, limit int, encode func(*T) string) ([]T, string, error) {
	next := ""
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
		next = encode(&rows[len(rows)-1])
	}
	return rows, next, nil
}

// Keyset completes base (a SELECT whose WHERE binds org_id to $1) into one
// page ordered by key ("time_col, id_col"), ascending or descending, that
// starts after the cursor; limit is clamped to 1..1000 (20 when out of
// range). Stores build their list queries with it, so every list pages the
// same way and stays an index range scan.
func Keyset(base, key string, desc bool, orgID uuid.UUID, after *Cursor, limit int) (string, []any) {
	col, id, _ := strings.Cut(key, ", ")
	return KeysetBy(base, []any{orgID}, col, id, desc, after, limit)
}

// KeysetBy is Keyset for a query with more parameters: base's WHERE binds
// args (org_id first), and the cursor's key and ID bind the next two. key
// is the sort expression (`created_at`, `name COLLATE "C"`), written as the
// index that serves the sort has it, and id the tie-breaking ID column.
func KeysetBy(base string, args []any, key, id string, desc bool, after *Cursor, limit int) (string, []any) {
	if limit <= 0 || limit > 1000 {
		limit = 20
	}
	cmp, dir := ">", ""
	if desc {
		cmp, dir = "<", " DESC"
	}
	q, out := base, slices.Clone(args)
	if after != nil {
		n := len(out)
		q += ` AND (` + key + `, ` + id + `) ` + cmp + ` ($` + strconv.Itoa(n+1) + `, $` + strconv.Itoa(n+2) + `)`
		out = append(out, after.Key(), after.ID)
	}
	return q + ` ORDER BY ` + key + dir + `, ` + id + dir + ` LIMIT ` + strconv.Itoa(limit), out
}
