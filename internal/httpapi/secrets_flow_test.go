package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/jobs/task"
)

// Issue 8, "secrets at rest": whoever reads the outbox (the app role, every
// backup), Redis (a dump, task retention), dead_tasks or the queue UI must
// find no link that works. The attacker's sequence: the victim registers,
// invites an owner, changes their email and asks for a reset; the attacker
// reads every store the mail went through and looks for the tokens the
// victim received. The tokens come from the delivered mail; they must appear
// nowhere at rest, and still work for the mailbox's owner.
func TestNoUsableTokenAtRest(t *testing.T) {
	t.Parallel()
	// Mailpit refuses mail outside example.com for good, so one email task
	// dies and lands in dead_tasks (and Asynq's archive).
	e := newEnv(t, envOpts{queuesUI: true, mailArgs: []string{"--smtp-allowed-recipients", `@example\.com$`}})
	const (
		owner    = "owner@example.com"
		newAddr  = "owner-new@example.com"
		invitee  = "invitee@example.com"
		refused  = "someone@refused.test"
		resetPwd = "a freshly reset passphrase 7"
	)

	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]string{
		"email": owner, "password": password, "name": "Owner", "organization_name": "Acme"}}, 202, nil)
	verify := e.mailToken(owner, "Confirm your email", 1)
	e.noTokenAtRest(map[string]string{"verification": verify})
	e.expect(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": verify}}, 204, nil)
	s := e.login(owner, password)

	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: s.AccessToken,
		body: map[string]string{"email": invitee, "role": "owner"}}, 201, nil)
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: s.AccessToken,
		body: map[string]string{"email": refused, "role": "owner"}}, 201, nil)
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken,
		body: map[string]string{"email": newAddr, "current_password": password}}, 200, nil)
	e.expect(req{method: "POST", path: "/api/v1/auth/password/forgot", body: map[string]string{"email": owner}}, 202, nil)

	tokens := map[string]string{
		"invitation":   e.mailToken(invitee, "invited you", 1),
		"email change": e.mailToken(newAddr, "Confirm your email", 1),
		"reset":        e.mailToken(owner, "Reset your", 1),
	}
	e.waitDeadTask(task.TypeEmailSend)
	tokens["verification"] = verify
	e.noTokenAtRest(tokens)

	// The links still work for whoever holds the mail.
	var acc struct {
		Session session `json:"session"`
	}
	e.expect(req{method: "POST", path: "/api/v1/invitations/accept", body: map[string]string{
		"token": tokens["invitation"], "name": "Invitee", "password": password}}, 200, &acc)
	if acc.Session.Role != "owner" {
		t.Fatalf("accepted as %q, want owner", acc.Session.Role)
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": tokens["email change"]}}, 204, nil)
	e.expect(req{method: "POST", path: "/api/v1/auth/password/reset", body: map[string]string{
		"token": tokens["reset"], "password": resetPwd}}, 204, nil)
	e.login(newAddr, resetPwd)
}

// waitDeadTask waits until a task of typ is recorded in dead_tasks.
func (e *env) waitDeadTask(typ string) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := e.db.Owner.Get(&n, `SELECT count(*) FROM dead_tasks WHERE task_type = $1`, typ); err != nil {
			e.t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no %s task died", typ)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noTokenAtRest fails when any of tokens (name → token), or any link with a
// token at all, can be read from the outbox, Redis, dead_tasks or the queue
// UI's JSON API. Each store must hold the email tasks, so an empty store
// cannot pass for a clean one.
func (e *env) noTokenAtRest(tokens map[string]string) {
	e.t.Helper()
	look := func(where string, blob []byte) {
		e.t.Helper()
		for name, tok := range tokens {
			if bytes.Contains(blob, []byte(tok)) {
				e.t.Errorf("the %s token is readable in %s", name, where)
			}
		}
		if i := bytes.Index(blob, []byte("token=")); i >= 0 {
			e.t.Errorf("%s holds a link with a token: …%s…", where, blob[max(0, i-80):min(len(blob), i+60)])
		}
	}

	// The outbox: payload and headers of every row.
	var rows []struct {
		Type    string `db:"task_type"`
		Payload []byte `db:"payload"`
		Headers string `db:"headers"`
	}
	if err := e.db.Owner.Select(&rows, `SELECT task_type, payload, headers::text AS headers FROM outbox`); err != nil {
		e.t.Fatal(err)
	}
	emails := 0
	for _, r := range rows {
		if strings.HasPrefix(r.Type, "email:") {
			emails++
		}
		look("outbox ("+r.Type+")", append(r.Payload, r.Headers...))
	}
	if emails == 0 {
		e.t.Fatal("the outbox holds no email rows")
	}

	// dead_tasks: what a task that died keeps for 90 days.
	var dead []struct {
		Type    string `db:"task_type"`
		Payload []byte `db:"payload"`
		Headers string `db:"headers"`
		Error   string `db:"last_error"`
	}
	if err := e.db.Owner.Select(&dead, `SELECT task_type, payload, headers::text AS headers, last_error FROM dead_tasks`); err != nil {
		e.t.Fatal(err)
	}
	for _, d := range dead {
		look("dead_tasks ("+d.Type+")", []byte(string(d.Payload)+d.Headers+d.Error))
		var p map[string]any
		if err := json.Unmarshal(d.Payload, &p); err != nil {
			e.t.Fatalf("dead task payload: %v: %s", err, d.Payload)
		}
		if data, _ := p["data"].(map[string]any); data["link"] != nil {
			e.t.Errorf("the dead task's payload carries a link: %s", d.Payload)
		}
	}

	// Redis: every key and every value, whatever its type (Asynq keeps a
	// task as a hash whose "msg" holds the payload).
	ctx := context.Background()
	rdb := e.redis.Client()
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	taskKeys := 0
	for _, k := range keys {
		var blob bytes.Buffer
		blob.WriteString(k)
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			e.t.Fatal(err)
		}
		var vals []string
		switch typ {
		case "string":
			v, err := rdb.Get(ctx, k).Result()
			vals, _ = []string{v}, err
		case "hash":
			m, _ := rdb.HGetAll(ctx, k).Result()
			for f, v := range m {
				vals = append(vals, f, v)
			}
			if strings.Contains(k, ":t:") {
				taskKeys++
			}
		case "list":
			vals, _ = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			vals, _ = rdb.SMembers(ctx, k).Result()
		case "zset":
			vals, _ = rdb.ZRange(ctx, k, 0, -1).Result()
		}
		for _, v := range vals {
			blob.WriteString(v)
		}
		look("Redis key "+k, blob.Bytes())
	}
	if taskKeys == 0 {
		e.t.Fatalf("Redis holds no task: %v", keys)
	}

	// The queue UI's JSON API: every task listing of every queue.
	if e.opsQueues == nil {
		e.opsQueues = e.queueSession(e.newPlatformAdmin("ops@example.com"))
	}
	qs := e.opsQueues
	listed := 0
	for _, q := range task.Queues {
		for _, state := range []string{"active", "pending", "scheduled", "retry", "archived", "completed"} {
			path := fmt.Sprintf("%s/api/queues/%s/%s_tasks?size=100", httpapi.QueuesPath, q, state)
			w := doQueues(e.h, http.MethodGet, path, nil, qs)
			if w.Code != http.StatusOK {
				e.t.Fatalf("%s: %d %s", path, w.Code, w.Body)
			}
			var body struct {
				Tasks []json.RawMessage `json:"tasks"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				e.t.Fatalf("%s: %v", path, err)
			}
			listed += len(body.Tasks)
			look("the queue UI's "+path, w.Body.Bytes())
		}
	}
	if listed == 0 {
		e.t.Fatal("the queue UI lists no task")
	}
}
