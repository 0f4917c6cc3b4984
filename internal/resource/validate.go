package resource

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/tenant"
)

// problems collects the invalid fields of one request.
type problems []apperr.FieldError

func (p *problems) add(field, msg string) {
	*p = append(*p, apperr.FieldError{Field: field, Message: msg})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return apperr.Validation(p...)
}

// name checks and trims a name: 1..MaxName characters of one line.
func (p *problems) name(v string) string {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		p.add("name", "is required")
	case utf8.RuneCountInString(v) > MaxName:
		p.add("name", "must be at most "+strconv.Itoa(MaxName)+" characters")
	case strings.ContainsAny(v, "\x00\r\n"):
		p.add("name", "must be one line of text")
	}
	return v
}

func (p *problems) description(v string) {
	switch {
	case utf8.RuneCountInString(v) > MaxDescription:
		p.add("description", "must be at most "+strconv.Itoa(MaxDescription)+" characters")
	case strings.IndexByte(v, 0) >= 0:
		p.add("description", "must not contain NUL characters")
	}
}

func (p *problems) status(v string) {
	if !slices.Contains(Statuses, v) {
		p.add("status", "must be one of "+strings.Join(Statuses, ", "))
	}
}

// attributes checks a JSON object of at most MaxAttributes bytes (compact)
// that PostgreSQL's jsonb stores as sent, and returns it compact. jsonb
// refuses \u0000 in strings and numbers past its range, which would
// otherwise be a 500; numbers must also fit a double, which is all most
// JSON clients read.
func (p *problems) attributes(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		p.add("attributes", "must be a JSON object")
		return nil
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		p.add("attributes", "must be a JSON object")
		return nil
	}
	if buf.Len() > MaxAttributes {
		p.add("attributes", "must be at most "+strconv.Itoa(MaxAttributes)+" bytes of JSON")
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		p.add("attributes", "must be a JSON object")
		return nil
	}
	if msg := storable(v); msg != "" {
		p.add("attributes", msg)
		return nil
	}
	return buf.Bytes()
}

// storable says why jsonb would refuse v, or "".
func storable(v any) string {
	switch x := v.(type) {
	case string:
		if strings.IndexByte(x, 0) >= 0 {
			return "must not contain NUL characters"
		}
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		mantissa, exp, _ := strings.Cut(strings.ToLower(string(x)), "e")
		e, _ := strconv.Atoi(exp)
		// Underflow parses as 0 without error, and jsonb refuses an
		// exponent far out of range even on zero.
		if err != nil || math.IsInf(f, 0) || (f == 0 && strings.ContainsAny(mantissa, "123456789")) || e > 1000 || e < -1000 {
			return "numbers must fit a 64-bit floating point value"
		}
	case []any:
		for _, e := range x {
			if m := storable(e); m != "" {
				return m
			}
		}
	case map[string]any:
		for k, e := range x {
			if m := storable(k); m != "" {
				return m
			}
			if m := storable(e); m != "" {
				return m
			}
		}
	}
	return ""
}

// resource validates in and returns the resource it describes.
func (in Input) resource() (*Resource, error) {
	var p problems
	r := &Resource{Name: p.name(in.Name), Description: in.Description, Status: in.Status, Attributes: json.RawMessage(`{}`)}
	p.description(in.Description)
	if r.Status == "" {
		r.Status = StatusActive
	}
	p.status(r.Status)
	if in.Attributes != nil {
		r.Attributes = p.attributes(in.Attributes)
	}
	return r, p.err()
}

// validate checks the fields a patch sets, trimming the name.
func (pt *Patch) validate() error {
	var p problems
	if pt.Name != nil {
		n := p.name(*pt.Name)
		pt.Name = &n
	}
	if pt.Description != nil {
		p.description(*pt.Description)
	}
	if pt.Status != nil {
		p.status(*pt.Status)
	}
	if pt.Attributes != nil {
		pt.Attributes = p.attributes(pt.Attributes)
	}
	return p.err()
}

// apply sets the patch's fields on r and returns the names of those that
// changed.
func (pt *Patch) apply(r *Resource) []string {
	var changed []string
	if pt.Name != nil && *pt.Name != r.Name {
		r.Name = *pt.Name
		changed = append(changed, "name")
	}
	if pt.Description != nil && *pt.Description != r.Description {
		r.Description = *pt.Description
		changed = append(changed, "description")
	}
	if pt.Status != nil && *pt.Status != r.Status {
		r.Status = *pt.Status
		changed = append(changed, "status")
	}
	if pt.Attributes != nil && !sameJSON(pt.Attributes, r.Attributes) {
		r.Attributes = pt.Attributes
		changed = append(changed, "attributes")
	}
	return changed
}

// sameJSON compares two JSON objects by value (jsonb reorders keys).
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func (f *Filter) validate() error {
	var p problems
	if f.Sort == (tenant.Sort{}) {
		f.Sort = DefaultSort
	} else if !slices.Contains(SortFields, f.Sort.Field) {
		p.add("sort", "must be one of "+strings.Join(SortFields, ", ")+", each optionally prefixed with -")
	}
	if f.Status != "" {
		p.status(f.Status)
	}
	if utf8.RuneCountInString(f.Q) > MaxQuery {
		p.add("q", "must be at most "+strconv.Itoa(MaxQuery)+" characters")
	} else if strings.IndexByte(f.Q, 0) >= 0 || !utf8.ValidString(f.Q) {
		p.add("q", "must be UTF-8 text without NUL characters")
	}
	return p.err()
}
