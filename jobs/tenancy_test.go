package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

// Register puts every type behind its tenancy: a tenant task without a
// valid org_id and a platform task with one are refused for good before
// their handler runs.
func TestRegisterRefusesTasksOfTheWrongTenancy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mux := asynq.NewServeMux()
	if err := jobs.Register(mux, e.deps); err != nil {
		t.Fatal(err)
	}
	payload := map[string][]byte{
		task.TypeEmailSend:    []byte(`{"to":"x@example.com","template":"welcome","data":{"name":"X"}}`),
		task.TypeEmailAccount: []byte(`{"to":"x@example.com","template":"welcome","data":{"name":"X"}}`),
	}
	for _, s := range task.Specs() {
		var bad []map[string]string
		switch s.Tenancy {
		case task.Tenant:
			bad = []map[string]string{nil, {outbox.HeaderOrgID: ""}, {outbox.HeaderOrgID: "org-7"}, {outbox.HeaderOrgID: uuid.Nil.String()}}
		case task.Platform:
			bad = []map[string]string{{outbox.HeaderOrgID: uuid.NewString()}, {outbox.HeaderOrgID: ""}}
		}
		for _, h := range bad {
			p, ok := payload[s.Type]
			if !ok {
				p, _ = json.Marshal(task.PeriodicPayload{Slot: time.Now()})
			}
			err := mux.ProcessTask(context.Background(), asynq.NewTaskWithHeaders(s.Type, p, h))
			if !errors.Is(err, task.ErrTenancy) || !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("%s (%s) with headers %v: got %v, want ErrTenancy and SkipRetry", s.Type, s.Tenancy, h, err)
			}
		}
	}
	var ran int
	if err := e.db.Owner.Get(&ran, `SELECT (SELECT count(*) FROM sent_emails) + (SELECT count(*) FROM canary_runs) + (SELECT count(*) FROM job_runs)`); err != nil || ran != 0 {
		t.Fatalf("a refused task ran its handler: %d rows (%v)", ran, err)
	}
}
