package email_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/email"
)

func TestRenderWelcome(t *testing.T) {
	t.Parallel()
	r, err := email.NewRenderer("https://app.example.com", "Keel")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Has("welcome") || r.Has("layout") || r.Has("nope") {
		t.Error("Has reports the wrong templates")
	}
	m, err := r.Render("welcome", "ada@example.com", map[string]string{"name": `Ada <script>alert("x")</script>`})
	if err != nil {
		t.Fatal(err)
	}
	if m.To != "ada@example.com" || m.Subject != "Welcome to Keel" {
		t.Errorf("to %q subject %q", m.To, m.Subject)
	}
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "Ada &lt;script&gt;") {
		t.Errorf("HTML does not escape data:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, `Hello Ada <script>alert("x")</script>,`) || !strings.Contains(m.Text, "Keel · https://app.example.com") {
		t.Errorf("text:\n%s", m.Text)
	}
	if !strings.HasPrefix(m.HTML, "<!doctype html>") || !strings.Contains(m.HTML, `<a href="https://app.example.com">Sign in</a>`) {
		t.Errorf("HTML layout:\n%s", m.HTML)
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	r, err := email.NewRenderer("https://app.example.com", "Keel")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Render("nope", "a@example.com", nil); !errors.Is(err, email.ErrUnknownTemplate) {
		t.Errorf("unknown template: %v", err)
	}
	// A template's data is checked, not silently rendered as "<no value>".
	if _, err := r.Render("welcome", "a@example.com", nil); err == nil {
		t.Error("missing data rendered")
	}
}

// Security notices render with the data auth gives them and carry no link
// but the app's own address: a notice may be read by the wrong person.
func TestRenderNotices(t *testing.T) {
	t.Parallel()
	r, err := email.NewRenderer("https://app.example.com", "Keel")
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"name": "Ada", "when": "Fri, 27 Nov 2026 14:00:00 UTC", "ip": "192.0.2.1"}
	for name, extra := range map[string]map[string]string{
		"password_changed":       nil,
		"two_factor_changed":     {"state": "off"},
		"email_change_requested": {"new_email": "new@example.com"},
		"address_in_use":         nil,
	} {
		data := map[string]string{}
		for k, v := range base {
			data[k] = v
		}
		for k, v := range extra {
			data[k] = v
		}
		m, err := r.Render(name, "ada@example.com", data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, body := range []string{m.Text, m.HTML} {
			if strings.Contains(body, "token") || strings.Count(body, "https://") != strings.Count(body, "https://app.example.com") {
				t.Errorf("%s links somewhere else:\n%s", name, body)
			}
			if !strings.Contains(body, "192.0.2.1") || !strings.Contains(body, "Ada") {
				t.Errorf("%s does not say who and from where:\n%s", name, body)
			}
		}
		for k, v := range extra {
			if !strings.Contains(m.Text, v) || !strings.Contains(m.Subject+m.HTML, v) {
				t.Errorf("%s does not show %s", name, k)
			}
		}
	}
}
