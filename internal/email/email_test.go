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
