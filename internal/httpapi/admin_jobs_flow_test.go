package httpapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestAdminJobs: the jobs view shows each job's latest run, the recent
// runs and the dead tasks with their secrets redacted; a replay enqueues
// the task again once (409 after), and every call is a platform row.
func TestAdminJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	adm := e.newPlatformAdmin("ops@jobs.test")
	t0 := time.Now().Add(-time.Hour).UTC()
	for i, r := range []struct{ job, status string }{
		{"backup:verify", "ok"}, {"retention:purge", "ok"}, {"backup:verify", "failed"},
	} {
		if _, err := e.db.Owner.Exec(`INSERT INTO job_runs (id, job, task_id, status, error, started_at, finished_at)
			VALUES ($1, $2, $3, $4, CASE WHEN $4 = 'failed' THEN 'restore failed' END, $5, $5)`,
			uuid.New(), r.job, "t"+uuid.NewString(), r.status, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	org := uuid.New()
	dead, replayed := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{dead, replayed} {
		if _, err := e.db.Owner.Exec(`INSERT INTO dead_tasks (id, task_id, task_type, queue, payload, headers, tenant_org_id, last_error, retried, max_retry)
			VALUES ($1, $2, 'test:admin_jobs', 'low', $3, '{}', $4, $5, 3, 3)`, id, "task-"+id.String(),
			[]byte(`{"user_id":"u1","reset_token":"s3cr3t-token","note":"see https://x.test/?key=s3cr3t-key"}`), org,
			"POST https://api.test/?token=s3cr3t-err failed"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.db.Owner.Exec(`UPDATE dead_tasks SET replayed_at = now(), replay_task_id = gen_random_uuid() WHERE id = $1`, replayed); err != nil {
		t.Fatal(err)
	}

	var view struct {
		Latest []struct {
			Job, Status string
			Error       *string
		} `json:"latest_runs"`
		Recent []struct{ Job string } `json:"recent_runs"`
		Dead   []struct {
			ID             string  `json:"id"`
			Type           string  `json:"type"`
			OrganizationID *string `json:"organization_id"`
			Payload        string  `json:"payload"`
			LastError      string  `json:"last_error"`
		} `json:"dead_tasks"`
	}
	w := e.expect(req{method: "GET", path: "/api/v1/admin/jobs", token: adm.AccessToken}, 200, &view)
	if strings.Contains(w.Body.String(), "s3cr3t") {
		t.Fatalf("a secret is shown: %s", w.Body.String())
	}
	if len(view.Latest) != 2 || view.Latest[0].Job != "backup:verify" || view.Latest[0].Status != "failed" || view.Latest[0].Error == nil ||
		view.Latest[1].Job != "retention:purge" || len(view.Recent) != 3 || view.Recent[0].Job != "backup:verify" {
		t.Fatalf("runs: %+v", view)
	}
	if len(view.Dead) != 1 || view.Dead[0].ID != dead.String() || view.Dead[0].OrganizationID == nil || *view.Dead[0].OrganizationID != org.String() ||
		!strings.Contains(view.Dead[0].Payload, `"reset_token":"[redacted]"`) || !strings.Contains(view.Dead[0].Payload, `"user_id":"u1"`) ||
		!strings.Contains(view.Dead[0].LastError, "token=[redacted]") {
		t.Fatalf("dead tasks: %+v", view.Dead)
	}

	var out struct {
		DeadTaskID string `json:"dead_task_id"`
		TaskID     string `json:"task_id"`
	}
	e.expect(req{method: "POST", path: "/api/v1/admin/jobs/dead/" + dead.String() + "/replay", token: adm.AccessToken}, 200, &out)
	var replayTask string
	if err := e.db.Owner.Get(&replayTask, `SELECT replay_task_id::text FROM dead_tasks WHERE id = $1`, dead); err != nil ||
		out.DeadTaskID != dead.String() || replayTask != out.TaskID {
		t.Fatalf("replay answered %+v; stored %q (%v)", out, replayTask, err)
	}
	var queued int
	if err := e.db.Owner.Get(&queued, `SELECT count(*) FROM outbox WHERE id = $1 AND task_type = 'test:admin_jobs'`, out.TaskID); err != nil || queued != 1 {
		t.Fatalf("replayed task in the outbox: %d (%v)", queued, err)
	}
	e.problem(req{method: "POST", path: "/api/v1/admin/jobs/dead/" + dead.String() + "/replay", token: adm.AccessToken}, 409, "already_replayed")
	e.problem(req{method: "POST", path: "/api/v1/admin/jobs/dead/" + replayed.String() + "/replay", token: adm.AccessToken}, 409, "already_replayed")
	e.problem(req{method: "POST", path: "/api/v1/admin/jobs/dead/" + uuid.NewString() + "/replay", token: adm.AccessToken}, 404, "not_found")

	var rows []struct {
		Action   string `db:"action"`
		TargetID string `db:"target_id"`
	}
	if err := e.db.Owner.Select(&rows, `SELECT action, target_id FROM audit_log WHERE org_id IS NULL AND actor_user_id = $1
		AND action IN ('admin.jobs_viewed', 'admin.task_replayed') ORDER BY created_at, id`, adm.UserID); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Action != "admin.jobs_viewed" || rows[1].Action != "admin.task_replayed" || rows[1].TargetID != dead.String() {
		t.Fatalf("platform rows: %+v (a refused replay writes none)", rows)
	}
}
