package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/mailtest"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/workertest"
	"github.com/keelhq/keel/jobs/task"
)

// A worker killed with SIGKILL while it mails: every email still goes out,
// and the only second copies are of messages whose SMTP exchange the kill
// cut (accepted by SMTP, acceptance not yet recorded), so at most one per
// task in flight. The number of copies is logged: docs/operations.md
// quotes it.
func TestKillWorkerWhileMailing(t *testing.T) {
	t.Parallel()
	bin := workertest.Binary(t, "worker")
	db := postgrestest.New(t)
	r := redistest.StartPersistent(t)
	mail := mailtest.Start(t)
	const total, concurrency = 300, 8
	tasks := make([]outbox.Task, total)
	for i := range tasks {
		m, err := task.NewAccountEmailTask(task.EmailPayload{To: fmt.Sprintf("user%d@example.com", i), Template: "welcome",
			Data: map[string]string{"name": "Ada"}})
		if err != nil {
			t.Fatal(err)
		}
		tasks[i] = m
	}
	ids := workertest.AddTasks(t, db.App, tasks, 100)
	env := workerEnv(db, r, "SMTP_URL="+mail.SMTPURL, fmt.Sprintf("WORKER_CONCURRENCY=%d", concurrency))

	received := func() int {
		_, n, err := mail.Messages(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	w := workertest.Start(t, bin, env...)
	workertest.WaitFor(t, time.Minute, "a third of the mail sent", func() (bool, string) {
		n := received()
		return n >= total/3, fmt.Sprint(n)
	})
	w.Kill()
	t.Logf("kill -9 with %d messages received", received())
	workertest.Start(t, bin, env...)

	// Tasks the killed worker held come back after their lease (30 s) at
	// the recoverer's next sweep.
	workertest.WaitFor(t, 3*time.Minute, "every email recorded as sent", func() (bool, string) {
		n := workertest.Count(t, db.Owner, `SELECT count(*) FROM sent_emails WHERE sent_at IS NOT NULL`)
		return n == total, fmt.Sprint(n)
	})
	list, n, err := mail.Messages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != len(list) {
		t.Fatalf("Mailpit lists %d of %d messages", len(list), n)
	}
	copies := map[string]int{}
	for _, m := range list {
		copies[strings.TrimSuffix(m.MessageID, "@keel")]++
	}
	dup := 0
	for _, id := range ids {
		switch c := copies[id]; {
		case c == 0:
			t.Errorf("task %s: no email", id)
		case c > 2:
			t.Errorf("task %s: %d copies", id, c)
		case c == 2:
			dup++
		}
	}
	if dup > concurrency {
		t.Errorf("%d emails sent twice; one kill can cut at most %d SMTP exchanges", dup, concurrency)
	}
	t.Logf("%d of %d emails sent twice after one kill -9 (%d tasks in flight at most)", dup, total, concurrency)
}
