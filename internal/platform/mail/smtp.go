// Package mail delivers email over SMTP with go-mail.
package mail

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/keelhq/keel/internal/email"
)

// SMTP sends messages through one SMTP server.
type SMTP struct {
	host string
	opts []gomail.Option
	from string
}

var _ email.Sender = (*SMTP)(nil)

// NewSMTP parses rawURL: smtp://[user:pass@]host[:port][?tls=none|opportunistic|mandatory]
// or smtps://… for implicit TLS. Plain smtp defaults to opportunistic STARTTLS.
func NewSMTP(rawURL, from string) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("SMTP_URL: %w", err)
	}
	s := &SMTP{host: u.Hostname(), from: from}
	if s.host == "" {
		return nil, errors.New("SMTP_URL: no host")
	}
	port := 25
	if u.Scheme == "smtps" {
		port = 465
		s.opts = append(s.opts, gomail.WithSSL())
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("SMTP_URL: bad port %q", p)
		}
	}
	s.opts = append(s.opts, gomail.WithPort(port), gomail.WithTimeout(10*time.Second))
	if u.Scheme == "smtp" {
		switch u.Query().Get("tls") {
		case "", "opportunistic":
			s.opts = append(s.opts, gomail.WithTLSPortPolicy(gomail.TLSOpportunistic), gomail.WithPort(port))
		case "none":
			s.opts = append(s.opts, gomail.WithTLSPolicy(gomail.NoTLS))
		case "mandatory":
			s.opts = append(s.opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		default:
			return nil, fmt.Errorf("SMTP_URL: tls must be none, opportunistic or mandatory")
		}
	}
	if u.User != nil && u.User.Username() != "" {
		pw, _ := u.User.Password()
		s.opts = append(s.opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(u.User.Username()), gomail.WithPassword(pw))
	}
	return s, nil
}

// Send delivers m. A 5xx answer from the server is permanent.
func (s *SMTP) Send(ctx context.Context, m email.Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return fmt.Errorf("%w: from %q: %v", email.ErrPermanent, s.from, err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("%w: to %q: %v", email.ErrPermanent, m.To, err)
	}
	msg.Subject(m.Subject)
	if m.MessageID != "" {
		msg.SetMessageIDWithValue(m.MessageID)
	} else {
		msg.SetMessageID()
	}
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		var se *gomail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.Reason == gomail.ErrSMTPRcptTo {
			return fmt.Errorf("%w: %v", email.ErrPermanent, err)
		}
		return fmt.Errorf("smtp send: %w", err)
	}
	return nil
}

// Ping connects to the server and says hello, for doctor and readiness.
func (s *SMTP) Ping(ctx context.Context) error {
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return err
	}
	if err := c.DialWithContext(ctx); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	return c.Close()
}
