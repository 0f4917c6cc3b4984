// Package email renders Keel's transactional emails from the Go templates in
// templates/ (one shared layout, a text and an HTML body per email) and
// declares the Sender that delivers them.
package email

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strings"
	texttemplate "text/template"
)

//go:embed templates/*
var templatesFS embed.FS

// ErrUnknownTemplate is returned for a template name that does not exist.
var ErrUnknownTemplate = errors.New("unknown email template")

// Message is one rendered email, ready to send.
type Message struct {
	To        string
	Subject   string
	Text      string
	HTML      string
	MessageID string // stable per logical email, so a resend is recognisable
}

// Sender delivers a message. Implementations return an error wrapping
// ErrPermanent when retrying cannot help (a rejected recipient).
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrPermanent marks a delivery failure that a retry will not fix.
var ErrPermanent = errors.New("permanent delivery failure")

// Renderer renders named templates. Each email NAME has templates/NAME.txt
// (which defines "subject" and "body") and templates/NAME.html (which
// defines "body"), wrapped by layout.txt and layout.html.
type Renderer struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
	// BaseURL is offered to templates as .BaseURL.
	BaseURL string
	// Product is the product name shown in the layout.
	Product string
}

// NewRenderer parses every template; an error here is a broken build.
func NewRenderer(baseURL, product string) (*Renderer, error) {
	r := &Renderer{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}, BaseURL: baseURL, Product: product}
	entries, err := templatesFS.ReadDir("templates")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "layout."):
			continue
		case strings.HasSuffix(name, ".txt"):
			t, err := texttemplate.New("layout.txt").Option("missingkey=error").ParseFS(templatesFS, "templates/layout.txt", "templates/"+name)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", name, err)
			}
			r.text[strings.TrimSuffix(name, ".txt")] = t
		case strings.HasSuffix(name, ".html"):
			t, err := htmltemplate.New("layout.html").Option("missingkey=error").ParseFS(templatesFS, "templates/layout.html", "templates/"+name)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", name, err)
			}
			r.html[strings.TrimSuffix(name, ".html")] = t
		}
	}
	for n := range r.text {
		if r.html[n] == nil {
			return nil, fmt.Errorf("email %s has a .txt template but no .html", n)
		}
	}
	return r, nil
}

// Has reports whether a template exists.
func (r *Renderer) Has(name string) bool { return r.text[name] != nil }

// Render fills template name with data for recipient to.
func (r *Renderer) Render(name, to string, data map[string]string) (Message, error) {
	tt, ht := r.text[name], r.html[name]
	if tt == nil || ht == nil {
		return Message{}, fmt.Errorf("%w: %q", ErrUnknownTemplate, name)
	}
	view := map[string]any{"BaseURL": r.BaseURL, "Product": r.Product, "To": to, "Data": data}
	var subj, text, html bytes.Buffer
	if err := tt.ExecuteTemplate(&subj, "subject", view); err != nil {
		return Message{}, fmt.Errorf("render %s subject: %w", name, err)
	}
	if err := tt.Execute(&text, view); err != nil {
		return Message{}, fmt.Errorf("render %s text: %w", name, err)
	}
	if err := ht.Execute(&html, view); err != nil {
		return Message{}, fmt.Errorf("render %s html: %w", name, err)
	}
	return Message{To: to, Subject: strings.TrimSpace(subj.String()), Text: text.String(), HTML: html.String()}, nil
}

// Link builds an absolute link into the app at path with a token query
// parameter, for the links emails carry.
func Link(base, path, token string) string {
	return strings.TrimRight(base, "/") + path + "?token=" + url.QueryEscape(token)
}
