package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	gosentry "github.com/getsentry/sentry-go"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/queue"
)

// A final task failure reaches Sentry once, tagged with its type, queue,
// organization and request, and carries nothing of the payload; a task put
// back (an organization at its concurrency limit) or revoked reaches it not
// at all. Not parallel: the Sentry client is process-wide.
func TestFinalFailuresReachSentryWithoutSecrets(t *testing.T) {
	mock := &gosentry.MockTransport{}
	if err := gosentry.Init(gosentry.ClientOptions{Dsn: "http://public@127.0.0.1:1/1", Transport: mock, Environment: "test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gosentry.CurrentHub().BindClient(nil) })

	const secret = "tok_9f8e7d6c5b4a" // what a careless payload might hold
	payload, _ := json.Marshal(map[string]string{"to": "ada@example.com", "link": "https://app.example/reset?token=" + secret})
	task := asynq.NewTaskWithHeaders("email:account", payload, map[string]string{
		outbox.HeaderOrgID: "0191c3a0-0000-7000-8000-000000000001", outbox.HeaderRequestID: "req-42"})
	f := &queue.FailureHandler{Log: zerolog.Nop()}

	f.HandleError(context.Background(), task, queue.ErrOrgBusy)
	f.HandleError(context.Background(), task, asynq.RevokeTask)
	if n := len(mock.Events()); n != 0 {
		t.Fatalf("%d Sentry events for tasks that are not dead", n)
	}
	// Outside a worker the context has no retry budget left: final.
	f.HandleError(context.Background(), task, fmt.Errorf("smtp: %w", errors.New("550 mailbox unavailable")))
	f.HandleError(context.Background(), task, fmt.Errorf("bad payload: %w", asynq.SkipRetry))
	events := mock.Events()
	if len(events) != 2 {
		t.Fatalf("%d Sentry events for two dead tasks", len(events))
	}
	for _, e := range events {
		tags := e.Tags
		if tags["task_type"] != "email:account" || tags["org_id"] != "0191c3a0-0000-7000-8000-000000000001" || tags["request_id"] != "req-42" {
			t.Errorf("event tags %v", tags)
		}
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), secret) || strings.Contains(string(b), "ada@example.com") {
			t.Errorf("a Sentry event carries the payload: %.500s", b)
		}
	}
}
