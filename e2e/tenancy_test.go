package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/mailtest"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/proctest"
	"github.com/keelhq/keel/jobs/task"
)

// Per-organization fairness through the binaries: with four worker slots
// and at most one task per organization, organization A's burst of twelve
// invitations goes out one at a time while organization B's single
// invitation, sent after the burst, is not kept waiting behind it. Every
// SMTP connection is held smtpDelay by a proxy, so A's twelve take at least
// eleven delays from first to last. Were the invitations missing their
// org_id, the four slots would take A's tasks four at a time and the span
// would be about two delays.
func TestPerOrgFairnessThroughTheBinaries(t *testing.T) {
	t.Parallel()
	const smtpDelay = 250 * time.Millisecond
	const burst = 12
	s := newStack(t)
	api, metrics := freeAddr(t), freeAddr(t)
	// Twelve invitations need more seats than the free plan's.
	pa := proctest.Start(t, bin("api"), s.env("HTTP_ADDR", api, "METRICS_ADDR", freeAddr(t), "PLANS_FILE", roomyPlans(t)))
	pw := proctest.Start(t, bin("worker"), s.env("METRICS_ADDR", metrics, "SMTP_URL", slowSMTP(t, s.mail.SMTPURL, smtpDelay),
		"WORKER_CONCURRENCY", "4", "WORKER_ORG_CONCURRENCY", "1"))
	pa.WaitStatus(t, "http://"+api+"/readyz", 200, 15*time.Second)
	pw.WaitStatus(t, "http://"+metrics+"/readyz", 200, 15*time.Second)
	base := "http://" + api + "/api/v1"
	a := mustOwner(t, s, base, "owner-a@example.com", "Org A")
	b := mustOwner(t, s, base, "owner-b@example.com", "Org B")

	for i := range burst {
		invite(t, base, a, fmt.Sprintf("a%02d@example.com", i))
	}
	invite(t, base, b, "b00@example.com")

	arrived := waitMail(t, s.mail, burst+1, "@example.com", func(to string) bool { return regexp.MustCompile(`^[ab]\d\d@`).MatchString(to) })
	var aTimes []time.Time
	for to, at := range arrived {
		if strings.HasPrefix(to, "a") {
			aTimes = append(aTimes, at)
		}
	}
	sort.Slice(aTimes, func(i, j int) bool { return aTimes[i].Before(aTimes[j]) })
	first, last, bAt := aTimes[0], aTimes[len(aTimes)-1], arrived["b00@example.com"]
	after := 0
	for _, at := range aTimes {
		if at.After(bAt) {
			after++
		}
	}
	t.Logf("A: %d emails from %s to %s (span %s); B's arrived %s after A's first, with %d of A's still to come",
		len(aTimes), first.Format("15:04:05.000"), last.Format("15:04:05.000"), last.Sub(first), bAt.Sub(first), after)
	if !bAt.Before(last) {
		t.Errorf("B's invitation arrived %s, after A's whole burst (last %s): B waited behind A", bAt.Format("15:04:05.000"), last.Format("15:04:05.000"))
	}
	if minSpan := time.Duration(float64(burst-1) * float64(smtpDelay) * 0.8); last.Sub(first) < minSpan {
		t.Errorf("A's %d emails arrived within %s, under %s: they were not sent one at a time", burst, last.Sub(first), minSpan)
	}
	_, body := proctest.Get("http://" + metrics + "/metrics")
	if n := counter(body, `keel_tasks_throttled_total{queue="default",type="email:send"}`); n < 1 {
		t.Errorf("no email:send task was throttled:\n%s", grep(body, "keel_tasks_"))
	}
}

// Row Level Security in the worker, through the binaries: an invitation
// revoked before the worker reaches its email is not mailed, and an outbox
// row forged to send organization A's invitation as organization B sends
// nothing (the invitation is not there under B), while the invitation's
// own row mails it once, with the link the worker minted. A row for
// organization A naming another recipient sends nothing either (the
// address comes from the invitation, and one invitation is mailed once).
// Tasks that find nothing to send complete; none dies.
func TestWorkerRunsTenantTasksUnderTheirOrganization(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api, metrics := freeAddr(t), freeAddr(t)
	pa := proctest.Start(t, bin("api"), s.env("HTTP_ADDR", api, "METRICS_ADDR", freeAddr(t)))
	workerEnv := s.env("METRICS_ADDR", metrics)
	pw := proctest.Start(t, bin("worker"), workerEnv)
	pa.WaitStatus(t, "http://"+api+"/readyz", 200, 15*time.Second)
	pw.WaitStatus(t, "http://"+metrics+"/readyz", 200, 15*time.Second)
	base := "http://" + api + "/api/v1"
	a := mustOwner(t, s, base, "owner-a@example.com", "Org A")
	b := mustOwner(t, s, base, "owner-b@example.com", "Org B")

	// With the worker stopped, nothing is sent before the revoke commits.
	if code, ok := pw.Terminate(10 * time.Second); !ok || code != 0 {
		t.Fatalf("worker after SIGTERM: exited=%v code=%d\n%s", ok, code, pw.Output())
	}
	revoked := invite(t, base, a, "revoked@example.com")
	kept := invite(t, base, a, "kept@example.com")
	call(t, "DELETE", base+"/organizations/current/invitations/"+revoked.String(), a.token, nil, 204, nil)

	// The same email:send, naming A's pending invitation, once as B's and
	// once as A's, written straight into the outbox as the owner role.
	owner := sqlx.MustOpen(postgres.DriverName, s.db.OwnerURL)
	defer owner.Close()
	forged := func(org uuid.UUID, to string) uuid.UUID {
		m, err := task.NewEmailSendTask(org, task.EmailPayload{To: to, Template: "invitation", InvitationID: &kept,
			Data: map[string]string{"inviter": "Mallory", "organization": "Org A", "role": "admin", "days": "7"}})
		if err != nil {
			t.Fatal(err)
		}
		return mustAddTask(t, owner, m)
	}
	asB, asA := forged(b.org, "kept@example.com"), forged(a.org, "forged@example.com")
	var revokedTask uuid.UUID
	if err := owner.Get(&revokedTask, `SELECT id FROM outbox WHERE convert_from(payload, 'UTF8')::jsonb->>'invitation_id' = $1`, revoked.String()); err != nil {
		t.Fatalf("outbox row of the revoked invitation: %v", err)
	}

	pw = proctest.Start(t, bin("worker"), workerEnv)
	pw.WaitStatus(t, "http://"+metrics+"/readyz", 200, 15*time.Second)
	got := s.mail.WaitFor(t, "kept@example.com", 20*time.Second)
	if got.MessageID == asB.String()+"@keel" || got.MessageID == asA.String()+"@keel" {
		t.Errorf("kept@ got the email of forged task %q (B's row is %s, A's %s)", got.MessageID, asB, asA)
	}
	if !regexp.MustCompile(`https://app\.keel\.test/accept-invitation\?token=[A-Za-z0-9_\-]{43}`).MatchString(got.Text) {
		t.Errorf("no minted link in kept@'s email:\n%s", got.Text)
	}
	opt, err := asynq.ParseRedisURI(s.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	for name, id := range map[string]uuid.UUID{"revoked invitation": revokedTask, "forged as B": asB, "forged as A": asA} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			info, err := insp.GetTaskInfo(task.QueueDefault, id.String())
			if err == nil && info.State == asynq.TaskStateCompleted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: task %s not completed: %+v %v\n%s", name, id, info, err, pw.Output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	list, _, err := s.mail.Messages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range list {
		for _, to := range m.To {
			count[to.Address]++
		}
	}
	if count["revoked@example.com"] != 0 || count["forged@example.com"] != 0 || count["kept@example.com"] != 1 {
		t.Errorf("mail per recipient: %v; want kept@ 1, forged@ 0, revoked@ 0", count)
	}
	var dead int
	if err := owner.Get(&dead, `SELECT count(*) FROM dead_tasks`); err != nil || dead != 0 {
		t.Errorf("%d dead tasks (%v); a task with nothing to send completes", dead, err)
	}
	if !strings.Contains(pw.Output(), "invitation not pending in this organization") {
		t.Errorf("the worker logged no skipped invitation:\n%s", pw.Output())
	}
}

// owner is a verified, logged-in owner of a new organization.
type owner struct {
	token string
	org   uuid.UUID
}

// mustOwner registers email with a new organization through the api,
// follows the verification link the worker mails, and logs in.
func mustOwner(t *testing.T, s *stack, base, email, orgName string) owner {
	t.Helper()
	const pw = "a long enough e2e passphrase"
	call(t, "POST", base+"/auth/register", "", map[string]string{"email": email, "password": pw, "name": "Owner", "organization_name": orgName}, 202, nil)
	msg := s.mail.WaitFor(t, email, 20*time.Second)
	tok := regexp.MustCompile(`https://app\.keel\.test/verify-email\?token=([A-Za-z0-9_\-]+)`).FindStringSubmatch(msg.Text)
	if tok == nil {
		t.Fatalf("no verification link in:\n%s", msg.Text)
	}
	s.waitLinkStored(t, tok[1])
	call(t, "POST", base+"/auth/verify-email", "", map[string]string{"token": tok[1]}, 204, nil)
	var sess struct {
		AccessToken    string    `json:"access_token"`
		OrganizationID uuid.UUID `json:"organization_id"`
	}
	call(t, "POST", base+"/auth/login", "", map[string]string{"email": email, "password": pw}, 200, &sess)
	return owner{token: sess.AccessToken, org: sess.OrganizationID}
}

// invite invites email as a member of o's organization and returns the
// invitation's ID.
func invite(t *testing.T, base string, o owner, email string) uuid.UUID {
	t.Helper()
	var inv struct {
		ID uuid.UUID `json:"id"`
	}
	call(t, "POST", base+"/organizations/current/invitations", o.token, map[string]string{"email": email, "role": "member"}, 201, &inv)
	return inv.ID
}

// call sends a JSON request (with a bearer token when set) and fails t
// unless the answer has status want; it decodes the body into out when set.
func call(t *testing.T, method, url, token string, body any, want int, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
}

// waitMail waits until Mailpit holds n messages to recipients matching
// want, and returns when each arrived (by recipient).
func waitMail(t *testing.T, mp *mailtest.Server, n int, what string, want func(to string) bool) map[string]time.Time {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		list, _, err := mp.Messages(context.Background())
		got := map[string]time.Time{}
		for _, m := range list {
			for _, to := range m.To {
				if want(to.Address) {
					got[to.Address] = m.Created
				}
			}
		}
		if err == nil && len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d emails to %s arrived (%v)", len(got), n, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// counter reads one sample's value from a Prometheus text exposition; 0
// when it is absent.
func counter(body, sample string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, sample+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

// slowSMTP starts a TCP proxy in front of the SMTP server smtpURL that
// holds every connection for delay before connecting it through; the
// worker opens one connection per email, so each email takes at least
// delay. It returns the proxy's smtp:// URL and stops when t ends.
func slowSMTP(t *testing.T, smtpURL string, delay time.Duration) string {
	t.Helper()
	target := strings.TrimPrefix(smtpURL, "smtp://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer track(c, false)
				defer c.Close()
				time.Sleep(delay)
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				track(up, true)
				defer track(up, false)
				defer up.Close()
				done := make(chan struct{}, 2)
				pipe := func(dst, src net.Conn) {
					_, _ = io.Copy(dst, src)
					if tc, ok := dst.(*net.TCPConn); ok {
						_ = tc.CloseWrite()
					}
					done <- struct{}{}
				}
				go pipe(up, c)
				go pipe(c, up)
				<-done
				<-done
			}()
		}
	}()
	return "smtp://" + ln.Addr().String()
}

// roomyPlans writes a plans file whose one plan caps nothing and returns
// its path, for tests that need more than the free plan allows.
func roomyPlans(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(p, []byte("default: roomy\nfallback: roomy\nplans:\n  - id: roomy\n    name: Roomy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
