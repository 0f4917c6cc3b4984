package mail_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/config"
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

// With ENV=production, an SMTP_URL without tls= must not send a reset link
// in clear to a server that offers no STARTTLS (Mailpit here offers none,
// as a downgrading man in the middle would): the worker's configuration
// makes STARTTLS mandatory and the send fails instead. An explicit
// tls=opportunistic is the operator's choice and is honoured.
func TestProductionRefusesCleartextFallback(t *testing.T) {
	t.Parallel()
	mp := mailtest.Start(t)
	worker := func(env, smtpURL string) *mail.SMTP {
		t.Helper()
		cfg, err := config.LoadWorker(config.MapEnv(map[string]string{"ENV": env, "SMTP_URL": smtpURL,
			"DATABASE_URL": "postgres://app@127.0.0.1/keel", "REDIS_URL": "redis://127.0.0.1:6379/0"}))
		if err != nil {
			t.Fatal(err)
		}
		s, err := mail.NewSMTP(cfg.SMTPURL, cfg.From)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	if err := worker("production", mp.SMTPURL).Send(ctx, msg("reset@example.com")); err == nil {
		t.Fatal("production sent mail without STARTTLS")
	}
	if err := worker("production", mp.SMTPURL+"?tls=opportunistic").Send(ctx, msg("explicit@example.com")); err != nil {
		t.Fatalf("explicit tls=opportunistic in production: %v", err)
	}
	if err := worker("development", mp.SMTPURL).Send(ctx, msg("dev@example.com")); err != nil {
		t.Fatalf("development default: %v", err)
	}
	mp.WaitFor(t, "dev@example.com", 5*time.Second)
	list, _, err := mp.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if len(m.To) > 0 && m.To[0].Address == "reset@example.com" {
			t.Fatal("the production message reached the server")
		}
	}
}
