package admin

import (
	"errors"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/apperr"
)

func TestCheckReason(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in, want string
		ok             bool
	}{
		{"trimmed", "  ticket 42  ", "ticket 42", true},
		{"500 characters", strings.Repeat("é", 500), strings.Repeat("é", 500), true},
		{"empty", "", "", false},
		{"blank", " \t ", "", false},
		{"501 characters", strings.Repeat("é", 501), "", false},
		{"two lines", "a\nb", "", false},
		{"NUL", "a\x00b", "", false},
		{"invalid UTF-8", "a\xffb", "", false},
	} {
		got, err := checkReason(c.in, true)
		var ae *apperr.Error
		switch {
		case c.ok && (err != nil || got != c.want):
			t.Errorf("%s: %q, %v", c.name, got, err)
		case !c.ok && (!errors.As(err, &ae) || ae.Code != "validation_failed"):
			t.Errorf("%s: accepted (%q) or wrong error %v", c.name, got, err)
		}
	}
}
