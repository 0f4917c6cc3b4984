package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/s3test"
)

// setBilling sets org's enforced billing status as the billing jobs leave
// it (the worker writes the same column through billing.Store).
func (e *env) setBilling(org, status string) {
	e.t.Helper()
	res, err := e.db.Owner.Exec(`UPDATE subscriptions SET status = $2 WHERE org_id = $1`, org, status)
	if err != nil {
		e.t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		e.t.Fatalf("organization %s has %d subscriptions rows", org, n)
	}
}

// paymentRequired sends r and fails unless it is refused with the
// read-only problem: 402, code and type payment_required, problem+json.
func (e *env) paymentRequired(r req) {
	e.t.Helper()
	w := e.problem(r, http.StatusPaymentRequired, "payment_required")
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		e.t.Fatal(err)
	}
	if p.Type != httpapi.ProblemTypeBase+"payment_required" || p.Status != http.StatusPaymentRequired {
		e.t.Fatalf("%s %s: problem type %q status %d", r.method, r.path, p.Type, p.Status)
	}
}

func isPaymentRequired(err error) bool {
	ae, ok := apperr.As(err)
	return ok && ae.Code == "payment_required" && ae.Kind == apperr.PaymentRequired
}

// TestReadOnlyRefusesEveryWrite: an organization past its grace period
// (read_only) is refused every create and change of its data with 402
// payment_required, through a user's token and through an API key alike,
// and nothing is written; reads keep working; it may still shrink (soft
// delete a resource) and still secure itself (revoke a key, remove a
// member, change a password, set up 2FA). Paid again (active), the very
// next write succeeds: nothing cached the status.
func TestReadOnlyRefusesEveryWrite(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, "files")
	e := newEnv(t, envOpts{storage: s3.Bucket{Client: srv.Client, Name: srv.Bucket}})
	owner := e.signup("ro-owner@example.com", "Olive", "Overdue Co")
	org := owner.OrganizationID
	member := e.join(owner, "ro-member@example.com", "member", 1)
	_ = member
	_, key := e.apiKey(owner.AccessToken, "ci", "admin")
	spareID, _ := e.apiKey(owner.AccessToken, "spare", "admin")
	kept := e.createResource(owner.AccessToken, map[string]any{"name": "Pump 1"})
	shrink := e.createResource(owner.AccessToken, map[string]any{"name": "Pump 2"})
	gone := e.createResource(owner.AccessToken, map[string]any{"name": "Pump 3"})
	e.expect(req{method: "DELETE", path: "/api/v1/resources/" + gone.ID, token: owner.AccessToken}, http.StatusNoContent, nil)
	up := e.announce(owner.AccessToken, kept.ID, "a.txt", "text/plain", 5)
	if code := putUpload(t, up, []byte("hello")); code != http.StatusOK {
		t.Fatalf("upload: %d", code)
	}
	dropped := e.announce(owner.AccessToken, kept.ID, "drop.txt", "text/plain", 5)
	var pending struct{ ID string }
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken,
		body: map[string]string{"email": "pending@example.com", "role": "member"}}, http.StatusCreated, &pending)
	var status string
	if err := e.db.Owner.Get(&status, `SELECT status FROM subscriptions WHERE org_id = $1`, org); err != nil || status != "trialing" {
		t.Fatalf("a new organization's billing status %q (%v), want trialing", status, err)
	}

	snapshot := func() string {
		var s string
		if err := e.db.Owner.Get(&s, `SELECT concat_ws('|',
			(SELECT string_agg(id || name || version || coalesce(deleted_at::text, 'live'), ',' ORDER BY id) FROM resources WHERE org_id = $1),
			(SELECT string_agg(id || status || coalesce(completed_at::text, 'open'), ',' ORDER BY id) FROM files WHERE org_id = $1),
			(SELECT count(*) FROM invitations WHERE org_id = $1))`, org); err != nil {
			t.Fatal(err)
		}
		return s
	}
	e.setBilling(org, "read_only")
	before := snapshot()
	writes := func(tok string) []req {
		return []req{
			{method: "POST", path: "/api/v1/resources", body: map[string]any{"name": "New pump"}},
			{method: "PATCH", path: "/api/v1/resources/" + kept.ID, header: map[string]string{"If-Match": `"1"`}, body: map[string]any{"name": "Renamed"}},
			{method: "POST", path: "/api/v1/resources/" + gone.ID + "/restore"},
			{method: "POST", path: "/api/v1/resources/" + kept.ID + "/files", body: map[string]any{"filename": "b.txt", "content_type": "text/plain", "size": 5}},
			{method: "POST", path: "/api/v1/files/" + up.File.ID + "/complete"},
		}
	}
	for _, tok := range []string{owner.AccessToken, key} {
		for _, r := range writes(tok) {
			r.token = tok
			e.paymentRequired(r)
			e.paymentRequired(withIdempotencyKey(r, uuid.NewString()))
		}
	}
	e.paymentRequired(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken,
		body: map[string]string{"email": "late@example.com", "role": "member"}})
	if after := snapshot(); after != before {
		t.Fatalf("a refused write changed the organization:\nbefore %s\nafter  %s", before, after)
	}

	// Reads keep working, by user and by key.
	for _, tok := range []string{owner.AccessToken, key} {
		var page resourcePage
		e.expect(req{method: "GET", path: "/api/v1/resources", token: tok}, http.StatusOK, &page)
		if len(page.Data) != 2 {
			t.Fatalf("read-only list: %d resources, want 2", len(page.Data))
		}
		e.expect(req{method: "GET", path: "/api/v1/resources/" + kept.ID, token: tok}, http.StatusOK, nil)
		e.expect(req{method: "GET", path: "/api/v1/resources/" + kept.ID + "/files", token: tok}, http.StatusOK, nil)
		e.expect(req{method: "GET", path: "/api/v1/files/" + up.File.ID, token: tok}, http.StatusOK, nil)
		e.expect(req{method: "GET", path: "/api/v1/organizations/current/usage", token: tok}, http.StatusOK, nil)
	}
	for _, p := range []string{"/members", "/invitations", "/api-keys", "/audit-log"} {
		e.expect(req{method: "GET", path: "/api/v1/organizations/current" + p, token: owner.AccessToken}, http.StatusOK, nil)
	}

	// Shrinking is allowed: the soft delete is the one resource update the
	// trigger lets through, and deletes do not fire it, so an organization
	// that cannot pay can still remove data (and its usage) rather than
	// being stuck with it.
	e.expect(req{method: "DELETE", path: "/api/v1/resources/" + shrink.ID, token: key}, http.StatusNoContent, nil)
	e.expect(req{method: "GET", path: "/api/v1/resources/" + shrink.ID, token: owner.AccessToken}, http.StatusNotFound, nil)
	e.expect(req{method: "DELETE", path: "/api/v1/files/" + dropped.File.ID, token: key}, http.StatusNoContent, nil)
	e.expect(req{method: "DELETE", path: "/api/v1/organizations/current/invitations/" + pending.ID, token: owner.AccessToken}, http.StatusNoContent, nil)

	// Security actions touch no billed data and must never wait for a
	// payment: a leaked key is revoked, a member removed, a password
	// changed, 2FA set up.
	e.expect(req{method: "DELETE", path: "/api/v1/organizations/current/api-keys/" + spareID, token: owner.AccessToken}, http.StatusNoContent, nil)
	memberID := e.members(owner.AccessToken)["ro-member@example.com"].UserID
	e.expect(req{method: "DELETE", path: "/api/v1/organizations/current/members/" + memberID, token: owner.AccessToken}, http.StatusNoContent, nil)
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: owner.AccessToken, body: map[string]string{
		"current_password": password, "new_password": "a new long passphrase 7"}}, http.StatusOK, nil)
	owner = e.login("ro-owner@example.com", "a new long passphrase 7")
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/setup", token: owner.AccessToken}, http.StatusOK, nil)

	// Paid: the next write of each kind succeeds at once.
	e.setBilling(org, "active")
	e.createResource(key, map[string]any{"name": "After payment"})
	e.expect(req{method: "PATCH", path: "/api/v1/resources/" + kept.ID, token: key, header: map[string]string{"If-Match": `"1"`},
		body: map[string]any{"name": "Renamed"}}, http.StatusOK, nil)
	e.expect(req{method: "POST", path: "/api/v1/resources/" + gone.ID + "/restore", token: owner.AccessToken}, http.StatusOK, nil)
	e.expect(req{method: "POST", path: "/api/v1/files/" + up.File.ID + "/complete", token: owner.AccessToken}, http.StatusAccepted, nil)
	e.expect(req{method: "POST", path: "/api/v1/organizations/current/invitations", token: owner.AccessToken,
		body: map[string]string{"email": "late@example.com", "role": "member"}}, http.StatusCreated, nil)
}

// TestReadOnlyFileProcessIsRetried: a file completed before its
// organization became read-only is processed by a job; under read-only the
// job's write is refused like any other (payment_required), the file is
// not marked ready, and the error is an ordinary failure that Asynq
// retries with backoff (not SkipRetry); paid, the retry makes it ready.
func TestReadOnlyFileProcessIsRetried(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, "files")
	// No worker: the test runs the job itself, so nothing races it.
	e := newEnv(t, envOpts{noMail: true, storage: s3.Bucket{Client: srv.Client, Name: srv.Bucket}})
	owner := e.registerVerifiedLogin("ro-files@example.com")
	res := e.createResource(owner.AccessToken, map[string]any{"name": "Tank"})
	up := e.announce(owner.AccessToken, res.ID, "a.txt", "text/plain", 5)
	if code := putUpload(t, up, []byte("hello")); code != http.StatusOK {
		t.Fatalf("upload: %d", code)
	}
	e.expect(req{method: "POST", path: "/api/v1/files/" + up.File.ID + "/complete", token: owner.AccessToken}, http.StatusAccepted, nil)
	e.setBilling(owner.OrganizationID, "read_only")
	org, id := uuid.MustParse(owner.OrganizationID), uuid.MustParse(up.File.ID)
	fileStatus := func() string {
		var s string
		if err := e.db.Owner.Get(&s, `SELECT status FROM files WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		return s
	}
	err := e.files.Process(context.Background(), org, id)
	if !isPaymentRequired(err) {
		t.Fatalf("file:process of a read-only organization: %v, want payment_required", err)
	}
	if errors.Is(err, asynq.SkipRetry) || !queue.IsFailure(err) {
		t.Fatalf("the refusal is not retried: %v", err)
	}
	if s := fileStatus(); s == "ready" {
		t.Fatalf("file marked %s while read-only", s)
	}
	e.setBilling(owner.OrganizationID, "active")
	if err := e.files.Process(context.Background(), org, id); err != nil {
		t.Fatal(err)
	}
	if s := fileStatus(); s != "ready" {
		t.Fatalf("after payment the retry left the file %s", s)
	}
}

// TestReadOnlyFlipRace: a write racing the switch to read-only either
// commits before the switch commits or is refused; no row of the
// organization commits after the switch. The check locks the
// organization's subscriptions row (FOR SHARE) in the writing
// transaction, so the switch waits for writes that passed the check, and
// writes that come after the switch's update wait for it and see it.
func TestReadOnlyFlipRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	owner := e.registerVerifiedLogin("ro-race@example.com")
	org := uuid.MustParse(owner.OrganizationID)
	ctx := context.Background()
	count := func() int {
		var n int
		if err := e.db.Owner.Get(&n, `SELECT count(*) FROM resources WHERE org_id = $1`, org); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// waitingOnLock: is a backend running a query starting with prefix
	// waiting for a lock?
	waitingOnLock := func(prefix string) bool {
		var n int
		if err := e.db.Owner.Get(&n, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1 || '%'`, prefix); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	insert := func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO resources (org_id, id, name) VALUES ($1, $2, 'raced')`, org, uuid.New())
		return err
	}

	// 1. A write passed the check and has not committed: the switch waits
	// for it, so the write commits first.
	release, inserted := make(chan struct{}), make(chan error, 1)
	writer := make(chan error, 1)
	go func() {
		writer <- postgres.InTx(ctx, e.db.App, org, func(tx *sqlx.Tx) error {
			err := insert(tx)
			inserted <- err
			<-release
			return err
		})
	}()
	if err := <-inserted; err != nil {
		t.Fatal(err)
	}
	flipped := make(chan error, 1)
	go func() {
		_, err := e.db.Owner.ExecContext(ctx, `UPDATE subscriptions SET status = 'read_only' WHERE org_id = $1`, org)
		flipped <- err
	}()
	for !waitingOnLock("UPDATE subscriptions") {
		select {
		case err := <-flipped:
			close(release)
			t.Fatalf("the switch to read-only committed (%v) while a write that passed the check was open: that write commits after it", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(release)
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	if err := <-flipped; err != nil {
		t.Fatal(err)
	}
	e.setBilling(owner.OrganizationID, "active")

	// 2. The switch has updated the row and not committed: a write waits
	// for it and is then refused.
	flip, err := e.db.Owner.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flip.ExecContext(ctx, `UPDATE subscriptions SET status = 'read_only' WHERE org_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	go func() { writer <- postgres.InTx(ctx, e.db.App, org, insert) }()
	var early error
	done := false
	for !done && !waitingOnLock("INSERT INTO resources") {
		select {
		case early = <-writer:
			done = true
		case <-time.After(5 * time.Millisecond):
		}
	}
	n := count()
	if err := flip.Commit(); err != nil {
		t.Fatal(err)
	}
	if done {
		// Not blocked: it must have committed before the switch did.
		if early != nil {
			t.Fatalf("write before the switch committed: %v", early)
		}
	} else if err := <-writer; !isPaymentRequired(err) {
		t.Fatalf("a write that waited for the switch: %v, want payment_required", err)
	}
	if c := count(); c != n {
		t.Fatalf("%d rows committed after the switch to read-only", c-n)
	}
	e.setBilling(owner.OrganizationID, "active")

	// 3. Many API creates while another goroutine switches: every answer
	// is 201 or 402, and the rows counted right after the switch commits
	// are all there are once every writer stopped.
	_, key := e.apiKey(owner.AccessToken, "race", "admin")
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[int]int{}
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				w := e.do(req{method: "POST", path: "/api/v1/resources", token: key, body: map[string]any{"name": "storm"}})
				mu.Lock()
				answers[w.Code]++
				mu.Unlock()
			}
		}()
	}
	start := count()
	for count() < start+40 {
		time.Sleep(2 * time.Millisecond)
	}
	// Switched as billing does (billingdb.Store.Account with lock): the
	// billing lock first, so the writes arriving meanwhile queue behind it.
	created := func() int {
		mu.Lock()
		defer mu.Unlock()
		return answers[http.StatusCreated]
	}
	createdBefore := created()
	flipTx, err := e.db.Owner.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flipTx.ExecContext(ctx, `SELECT billing_lock($1, true)`, org); err != nil {
		t.Fatal(err)
	}
	if _, err := flipTx.ExecContext(ctx, `UPDATE subscriptions SET status = 'read_only' WHERE org_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	if err := flipTx.Commit(); err != nil {
		t.Fatal(err)
	}
	atFlip := count()
	// Not starved: while the switch waited, only the writes already in
	// flight (one per writer, and one each answered just before) passed.
	if n := created() - createdBefore; n > 16 {
		t.Fatalf("%d creates passed while the switch to read-only waited; want at most the 8 writers' in flight", n)
	}
	// Let the writers run against the switched row for a while.
	for {
		mu.Lock()
		refused := answers[http.StatusPaymentRequired]
		mu.Unlock()
		if refused >= 40 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if c := count(); c != atFlip {
		t.Fatalf("%d rows committed after the switch to read-only (answers %v)", c-atFlip, answers)
	}
	if len(answers) != 2 || answers[http.StatusCreated] == 0 {
		t.Fatalf("answers %v, want only 201 and 402", answers)
	}
	t.Logf("storm answers: %v", fmt.Sprint(answers))
}

// billingPlans: pro (the default, trialed at signup) allows 10 resources,
// free (the fallback) 3.
func billingPlans(t testing.TB) *plan.Catalog {
	t.Helper()
	c, err := plan.Parse([]byte(`default: pro
fallback: free
signup_trial: true
grace_days: 10
plans:
  - id: free
    name: Free
    limits: {seats: 5, resources: 3, storage_bytes: 1000000, api_requests_per_minute: 100000}
  - id: pro
    name: Pro
    trial_days: 14
    prices: {monthly: price_test_pro_monthly, yearly: price_test_pro_yearly}
    limits: {seats: 20, resources: 10, storage_bytes: 1000000, api_requests_per_minute: 100000}
`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPlanLimitsFollowBilling: a trialing organization has its trial
// plan's limits; canceled, it falls back to the free plan at once: a
// create over free's limit answers 402 plan_limit_reached (user and key)
// while the resources beyond the limit stay, readable and deletable, and
// the usage endpoint reports the fallback plan.
func TestPlanLimitsFollowBilling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true, plans: billingPlans(t)})
	owner := e.registerVerifiedLogin("limits-billing@example.com")
	org := owner.OrganizationID
	_, key := e.apiKey(owner.AccessToken, "ci", "admin")
	usage := func() usageDoc {
		var u usageDoc
		e.expect(req{method: "GET", path: "/api/v1/organizations/current/usage", token: owner.AccessToken}, http.StatusOK, &u)
		return u
	}
	if u := usage(); u.Plan.ID != "pro" {
		t.Fatalf("trialing organization's plan %q, want pro", u.Plan.ID)
	}
	var ids []string
	for i := range 5 {
		ids = append(ids, e.createResource(owner.AccessToken, map[string]any{"name": fmt.Sprintf("R%d", i)}).ID)
	}

	e.setBilling(org, "canceled")
	u := usage()
	used, limit := u.of(t, "resources")
	if u.Plan.ID != "free" || !isInt(used, 5) || !isInt(limit, 3) {
		t.Fatalf("canceled organization's usage: plan %q, resources %v of %v", u.Plan.ID, used, limit)
	}
	for _, tok := range []string{owner.AccessToken, key} {
		w := e.problem(req{method: "POST", path: "/api/v1/resources", token: tok, body: map[string]any{"name": "over"}},
			http.StatusPaymentRequired, "plan_limit_reached")
		if p := limitProblem(t, w); p.Metric != "resources" || p.Plan != "free" || !isInt(p.Limit, 3) || !isInt(p.Usage, 5) {
			t.Fatalf("limit problem %+v", p)
		}
	}
	var page resourcePage
	e.expect(req{method: "GET", path: "/api/v1/resources", token: key}, http.StatusOK, &page)
	if len(page.Data) != 5 {
		t.Fatalf("the data beyond the fallback's limit: %d resources listed, want 5 kept", len(page.Data))
	}
	// Deleting down to the limit makes room again.
	for _, id := range ids[:3] {
		e.expect(req{method: "DELETE", path: "/api/v1/resources/" + id, token: key}, http.StatusNoContent, nil)
	}
	e.createResource(key, map[string]any{"name": "within free"})
	e.problem(req{method: "POST", path: "/api/v1/resources", token: key, body: map[string]any{"name": "over"}},
		http.StatusPaymentRequired, "plan_limit_reached")

	// Subscribed again: pro's limits at once.
	e.setBilling(org, "active")
	e.createResource(key, map[string]any{"name": "pro again"})
	if u := usage(); u.Plan.ID != "pro" {
		t.Fatalf("active organization's plan %q, want pro", u.Plan.ID)
	}
}
