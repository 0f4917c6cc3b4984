package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/proctest"
)

// TestIdentityThroughTheBinaries: keelctl seeds the demo (once), the api
// binary registers a user, the worker binary mails the verification link
// through Mailpit, and the verified user logs in and reads /me; the demo
// logins printed by seed-demo work too.
func TestIdentityThroughTheBinaries(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	code, out, _ := proctest.Run(t, time.Minute, bin("keelctl"), s.ctlEnv(), "seed-demo")
	if code != 0 || !strings.Contains(out, "owner@demo.keel.localhost") {
		t.Fatalf("seed-demo: exit %d\n%s", code, out)
	}
	pw := regexp.MustCompile(`password (\S+) as:`).FindStringSubmatch(out)
	if pw == nil {
		t.Fatalf("seed-demo printed no password:\n%s", out)
	}
	if code, out, _ := proctest.Run(t, time.Minute, bin("keelctl"), s.ctlEnv(), "seed-demo"); code != 0 || !strings.Contains(out, "already exists") {
		t.Fatalf("second seed-demo: exit %d\n%s", code, out)
	}

	api, worker := freeAddr(t), freeAddr(t)
	pa := proctest.Start(t, bin("api"), s.env("HTTP_ADDR", api, "METRICS_ADDR", freeAddr(t)))
	pw2 := proctest.Start(t, bin("worker"), s.env("METRICS_ADDR", worker))
	pa.WaitStatus(t, "http://"+api+"/readyz", 200, 15*time.Second)
	pw2.WaitStatus(t, "http://"+worker+"/readyz", 200, 15*time.Second)
	base := "http://" + api + "/api/v1"

	var sess struct {
		AccessToken string `json:"access_token"`
		Role        string `json:"role"`
	}
	postJSON(t, base+"/auth/login", map[string]string{"email": "owner@demo.keel.localhost", "password": pw[1]}, 200, &sess)
	if sess.Role != "owner" {
		t.Fatalf("demo owner logged in as %q", sess.Role)
	}

	postJSON(t, base+"/auth/register", map[string]string{"email": "e2e@example.com", "password": "a long enough e2e passphrase", "name": "E2E"}, 202, nil)
	msg := s.mail.WaitFor(t, "e2e@example.com", 20*time.Second)
	tok := regexp.MustCompile(`https://app\.keel\.test/verify-email\?token=([A-Za-z0-9_\-]+)`).FindStringSubmatch(msg.Text)
	if tok == nil {
		t.Fatalf("no verification link in:\n%s", msg.Text)
	}
	s.waitLinkStored(t, tok[1])
	postJSON(t, base+"/auth/verify-email", map[string]string{"token": tok[1]}, 204, nil)
	postJSON(t, base+"/auth/login", map[string]string{"email": "e2e@example.com", "password": "a long enough e2e passphrase"}, 200, &sess)
	req, _ := http.NewRequest("GET", base+"/me", nil)
	req.Header.Set("Authorization", "Bearer "+sess.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var me struct {
		Email       string `json:"email"`
		Memberships []struct {
			Role string `json:"role"`
		} `json:"memberships"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || resp.StatusCode != 200 || me.Email != "e2e@example.com" || len(me.Memberships) != 1 {
		t.Fatalf("GET /me: %d %+v %v", resp.StatusCode, me, err)
	}
}

func postJSON(t *testing.T, url string, body any, want int, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %d, want %d: %s", url, resp.StatusCode, want, raw.String())
	}
	if out != nil {
		if err := json.Unmarshal(raw.Bytes(), out); err != nil {
			t.Fatalf("POST %s: %v: %s", url, err, raw.String())
		}
	}
}
