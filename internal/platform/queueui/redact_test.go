package queueui_test

import (
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/platform/queueui"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in, want string
	}{
		{"ids and names stay", `{"to":"a@example.com","template":"verify_email","data":{"name":"Ada","hours":"24"},"token_id":"0190-1"}`,
			`{"data":{"hours":"24","name":"Ada"},"template":"verify_email","to":"a@example.com","token_id":"0190-1"}`},
		{"secret keys", `{"token":"t1","password":"p1","data":{"link":"https://app/x","reset_url":"u","apiKey":"k","Secret":"s","tokenID":"id-stays"}}`,
			`{"data":{"Secret":"[redacted]","apiKey":"[redacted]","link":"[redacted]","reset_url":"[redacted]","tokenID":"id-stays"},"password":"[redacted]","token":"[redacted]"}`},
		{"nested in lists", `{"items":[{"refresh_token":"r"},{"note":"go to https://app.test/reset?x=1&token=abc&y=2"}]}`,
			`{"items":[{"refresh_token":"[redacted]"},{"note":"go to https://app.test/reset?x=1&token=[redacted]&y=2"}]}`},
		{"numbers and HTML kept", `{"n":12345678901234567890,"html":"<b>&</b>"}`, `{"html":"<b>&</b>","n":12345678901234567890}`},
		{"plain text", `reset https://u:hunter2@app.test/r?code=123&lang=en Authorization: Bearer abc.def`,
			`reset https://u:[redacted]@app.test/r?code=[redacted]&lang=en Authorization: Bearer [redacted]`},
		{"not JSON after JSON", `{"a":1} token=x`, `{"a":1} token=[redacted]`},
		{"binary", "\x00\x01secret", "non-printable bytes"},
	} {
		if got := queueui.Redact([]byte(c.in)); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	if got := queueui.Redact([]byte(`{"data":{"link":"https://app.keel.test/verify-email?token=SECRET"}}`)); strings.Contains(got, "SECRET") {
		t.Errorf("a link leaked: %s", got)
	}
}
