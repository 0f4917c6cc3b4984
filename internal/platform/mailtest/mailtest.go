// Package mailtest starts a private Mailpit (a real SMTP server that keeps
// what it receives) on free ports and reads delivered mail through its API.
package mailtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/tooltest"
)

// Server is a running Mailpit.
type Server struct {
	SMTPURL string // smtp://127.0.0.1:PORT
	APIURL  string // http://127.0.0.1:PORT
	cmd     *exec.Cmd
}

// Start runs Mailpit for t and stops it when t ends; args are extra Mailpit
// flags (e.g. --smtp-allowed-recipients to make it refuse some mail).
//
// Its ports are picked free and then bound by Mailpit, so another process
// can take one in between (tests run in parallel): a Mailpit that exits
// before it answers is started again on new ports, up to three times.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := tooltest.Bin(t, "mailpit")
	var last string
	for range 3 {
		s, out, ok := try(t, bin, args)
		if ok {
			return s
		}
		last = out
	}
	t.Fatalf("mailtest: mailpit did not start (3 tries); its last output:\n%s", last)
	return nil
}

// try starts one Mailpit and waits until it answers (ok), exits, or 30 s
// pass; out is its output when it did not answer.
func try(t testing.TB, bin string, args []string) (*Server, string, bool) {
	smtpPort, httpPort := redistest.FreePort(t), redistest.FreePort(t)
	for httpPort == smtpPort {
		httpPort = redistest.FreePort(t)
	}
	s := &Server{
		SMTPURL: fmt.Sprintf("smtp://127.0.0.1:%d", smtpPort),
		APIURL:  fmt.Sprintf("http://127.0.0.1:%d", httpPort),
	}
	tooltest.NoInheritedFDs()
	s.cmd = exec.Command(bin, append([]string{
		"--smtp", fmt.Sprintf("127.0.0.1:%d", smtpPort),
		"--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--database", filepath.Join(t.TempDir(), "mailpit.db"),
		"--smtp-auth-accept-any", "--smtp-auth-allow-insecure",
		"--quiet"}, args...)...)
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("mailtest: start mailpit: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.APIURL + "/api/v1/info")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, "", true
			}
		}
		select {
		case <-exited:
			return nil, out.String(), false
		default:
		}
		if time.Now().After(deadline) {
			_ = s.cmd.Process.Kill()
			<-exited
			return nil, fmt.Sprintf("no answer in 30 s (%v)\n%s", err, out.String()), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Address is a mailbox in a message.
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Summary is a message as Mailpit lists it.
type Summary struct {
	ID        string    `json:"ID"`
	MessageID string    `json:"MessageID"` // the Message-ID header, without angle brackets
	From      Address   `json:"From"`
	To        []Address `json:"To"`
	Subject   string    `json:"Subject"`
	Created   time.Time `json:"Created"` // when Mailpit received it, to the millisecond
}

// Message is one whole message.
type Message struct {
	Summary
	Text string `json:"Text"`
	HTML string `json:"HTML"`
}

// Messages lists every received message (up to 1,000), newest first.
func (s *Server) Messages(ctx context.Context) ([]Summary, int, error) {
	var body struct {
		Total    int       `json:"total"`
		Messages []Summary `json:"messages"`
	}
	if err := s.get(ctx, "/api/v1/messages?limit=1000", &body); err != nil {
		return nil, 0, err
	}
	return body.Messages, body.Total, nil
}

// Message fetches one message by ID.
func (s *Server) Message(ctx context.Context, id string) (Message, error) {
	var m Message
	err := s.get(ctx, "/api/v1/message/"+url.PathEscape(id), &m)
	return m, err
}

// WaitFor polls until a message to recipient arrives, and returns it.
func (s *Server) WaitFor(t testing.TB, recipient string, timeout time.Duration) Message {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		list, _, err := s.Messages(ctx)
		if err == nil {
			for _, m := range list {
				for _, to := range m.To {
					if to.Address == recipient {
						full, err := s.Message(ctx, m.ID)
						if err != nil {
							t.Fatalf("mailtest: read message: %v", err)
						}
						return full
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailtest: no mail to %s within %s (last error: %v)", recipient, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.APIURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("mailpit %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
