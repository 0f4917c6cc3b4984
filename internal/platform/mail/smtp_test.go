package mail_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/platform/mail"
	"github.com/keelhq/keel/internal/platform/mailtest"
	"github.com/keelhq/keel/internal/platform/redistest"
)

func TestNewSMTPRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"smtp://", "smtp://host:port", "smtp://host?tls=sometimes", "::"} {
		if _, err := mail.NewSMTP(u, "a@example.com"); err == nil {
			t.Errorf("NewSMTP(%q) accepted", u)
		}
	}
	for _, u := range []string{"smtp://127.0.0.1:1025", "smtp://u:p@mail.example.com?tls=mandatory", "smtps://mail.example.com", "smtp://h?tls=none"} {
		if _, err := mail.NewSMTP(u, "a@example.com"); err != nil {
			t.Errorf("NewSMTP(%q): %v", u, err)
		}
	}
}

func msg(to string) email.Message {
	return email.Message{To: to, Subject: "Hi", Text: "plain body", HTML: "<p>html body</p>", MessageID: "task-1@keel"}
}

func TestSendAndPing(t *testing.T) {
	t.Parallel()
	mp := mailtest.Start(t, "--smtp-allowed-recipients", `@example\.com$`)
	s, err := mail.NewSMTP(mp.SMTPURL, "Keel <no-reply@keel.test>")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Send(ctx, msg("ok@example.com")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	m := mp.WaitFor(t, "ok@example.com", 5*time.Second)
	if m.Subject != "Hi" || strings.TrimSpace(m.Text) != "plain body" || !strings.Contains(m.HTML, "<p>html body</p>") || m.From.Address != "no-reply@keel.test" {
		t.Errorf("received %+v", m)
	}

	// A recipient the server refuses (5xx) is permanent: retrying cannot help.
	err = s.Send(ctx, msg("someone@elsewhere.test"))
	if !errors.Is(err, email.ErrPermanent) {
		t.Errorf("refused recipient: %v, want ErrPermanent", err)
	}
	if err := s.Send(ctx, msg("not an address")); !errors.Is(err, email.ErrPermanent) {
		t.Errorf("malformed recipient: %v, want ErrPermanent", err)
	}

	down, _ := mail.NewSMTP("smtp://127.0.0.1:"+strconv.Itoa(redistest.FreePort(t)), "a@example.com")
	if err := down.Ping(ctx); err == nil {
		t.Error("Ping of a closed port succeeded")
	}
	if err := down.Send(ctx, msg("ok@example.com")); err == nil || errors.Is(err, email.ErrPermanent) {
		t.Errorf("server down: %v, want a temporary error", err)
	}
}
