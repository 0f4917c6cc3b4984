package task_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/jobs/task"
)

var validEmail = task.EmailPayload{To: "a@example.com", Template: "welcome", Data: map[string]string{"name": "A"}}

// tenantConstructors builds a valid task of each tenant type for org. A new
// tenant type must add its constructor here, or TestEverySpec fails.
var tenantConstructors = map[string]func(org uuid.UUID) (outbox.Task, error){
	task.TypeEmailSend:   func(org uuid.UUID) (outbox.Task, error) { return task.NewEmailSendTask(org, validEmail) },
	task.TypeFileProcess: func(org uuid.UUID) (outbox.Task, error) { return task.NewFileProcessTask(org, uuid.New()) },
	task.TypeFileDeleteObjects: func(org uuid.UUID) (outbox.Task, error) {
		return task.NewFileDeleteObjectsTask(org, []uuid.UUID{uuid.New()})
	},
	task.TypeBillingSyncSeats: func(org uuid.UUID) (outbox.Task, error) { return task.NewBillingSyncSeatsTask(org, "joined:x") },
	task.TypeBillingChangePlan: func(org uuid.UUID) (outbox.Task, error) {
		return task.NewBillingChangePlanTask(org, task.BillingChangePlanPayload{RequestID: uuid.New(), Plan: "pro", Interval: "month"})
	},
}

func TestEverySpec(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, s := range task.Specs() {
		if seen[s.Type] {
			t.Errorf("%s declared twice", s.Type)
		}
		seen[s.Type] = true
		if s.Tenancy != task.Tenant && s.Tenancy != task.Platform {
			t.Errorf("%s declares no tenancy (%s)", s.Type, s.Tenancy)
		}
		if !slices.Contains(task.Queues, s.Queue) || s.MaxRetry <= 0 || s.Timeout <= 0 || s.Unique < 0 {
			t.Errorf("%s: incomplete spec %+v", s.Type, s)
		}
		if got := task.SpecOf(s.Type); got != s {
			t.Errorf("SpecOf(%s) = %+v", s.Type, got)
		}
		if _, ok := tenantConstructors[s.Type]; ok != (s.Tenancy == task.Tenant) {
			t.Errorf("%s (%s): tenantConstructors has it = %v", s.Type, s.Tenancy, ok)
		}
	}
	if _, ok := task.Lookup("no:such"); ok {
		t.Error("Lookup found an undeclared type")
	}
}

// A tenant task carries its organization from the outbox row on, and cannot
// be built without one.
func TestTenantConstructorsNeedAnOrganization(t *testing.T) {
	t.Parallel()
	org := uuid.New()
	for typ, build := range tenantConstructors {
		if _, err := build(uuid.Nil); !errors.Is(err, task.ErrTenancy) {
			t.Errorf("%s with uuid.Nil: got %v, want ErrTenancy", typ, err)
		}
		got, err := build(org)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		s := task.SpecOf(typ)
		if got.Type != typ || got.Headers[outbox.HeaderOrgID] != org.String() || got.Queue != s.Queue ||
			got.MaxRetry != s.MaxRetry || got.Timeout != s.Timeout || got.Unique != s.Unique {
			t.Errorf("%s: %+v", typ, got)
		}
		if o, err := s.OrgOf(got.Headers); err != nil || o != org {
			t.Errorf("%s: OrgOf its own headers = %s, %v", typ, o, err)
		}
	}
}

// Spec.Outbox and Spec.OrgOf agree on the rule both ends of the queue apply.
func TestOutboxAndOrgOfEnforceTenancy(t *testing.T) {
	t.Parallel()
	org := uuid.New()
	for _, s := range task.Specs() {
		_, errNil := s.Outbox(uuid.Nil, nil)
		_, errOrg := s.Outbox(org, nil)
		_, hdrNone := s.OrgOf(nil)
		_, hdrOrg := s.OrgOf(map[string]string{outbox.HeaderOrgID: org.String()})
		_, hdrBad := s.OrgOf(map[string]string{outbox.HeaderOrgID: "org-7"})
		_, hdrZero := s.OrgOf(map[string]string{outbox.HeaderOrgID: uuid.Nil.String()})
		var want map[string]bool // which of the six must fail
		if s.Tenancy == task.Tenant {
			want = map[string]bool{"outbox nil": true, "outbox org": false, "no header": true, "org header": false, "bad header": true, "nil header": true}
		} else {
			want = map[string]bool{"outbox nil": false, "outbox org": true, "no header": false, "org header": true, "bad header": true, "nil header": true}
		}
		for name, err := range map[string]error{"outbox nil": errNil, "outbox org": errOrg, "no header": hdrNone,
			"org header": hdrOrg, "bad header": hdrBad, "nil header": hdrZero} {
			if (err != nil) != want[name] || (err != nil && !errors.Is(err, task.ErrTenancy)) {
				t.Errorf("%s (%s) %s: %v", s.Type, s.Tenancy, name, err)
			}
		}
	}
	if _, err := (task.Spec{Type: "x:y", Queue: task.QueueDefault}).Outbox(uuid.Nil, nil); !errors.Is(err, task.ErrTenancy) {
		t.Errorf("a spec without tenancy built a task: %v", err)
	}
}

func TestEmailConstructors(t *testing.T) {
	t.Parallel()
	org, inv := uuid.New(), uuid.New()
	for name, p := range map[string]task.EmailPayload{
		"bad recipient":  {To: "not an address", Template: "welcome"},
		"no template":    {To: "a@example.com"},
		"a link in data": {To: "a@example.com", Template: "reset_password", Data: map[string]string{"name": "A", "link": "https://app.keel.test/reset-password?token=x"}},
		"a token":        {To: "a@example.com", Template: "welcome", Data: map[string]string{"name": "A", "Reset_Token": "x"}},
		"a password":     {To: "a@example.com", Template: "welcome", Data: map[string]string{"name": "A", "password": "x"}},
		"a URL":          {To: "a@example.com", Template: "welcome", Data: map[string]string{"name": "A", "accept_url": "x"}},
		"both link IDs":  {To: "a@example.com", Template: "welcome", InvitationID: &inv, TokenID: &inv},
	} {
		if _, err := task.NewEmailSendTask(org, p); err == nil {
			t.Errorf("email:send with %s accepted", name)
		}
		if _, err := task.NewAccountEmailTask(p); err == nil {
			t.Errorf("email:account with %s accepted", name)
		}
	}
	withInv := validEmail
	withInv.InvitationID = &inv
	m, err := task.NewEmailSendTask(org, withInv)
	if err != nil || m.Type != task.TypeEmailSend || m.Queue != task.QueueDefault || m.MaxRetry != 10 || m.Timeout != time.Minute ||
		string(m.Payload) != `{"to":"a@example.com","template":"welcome","data":{"name":"A"},"invitation_id":"`+inv.String()+`"}` {
		t.Errorf("email:send: %+v (%s), %v", m, m.Payload, err)
	}
	nilInv := validEmail
	nilInv.InvitationID = &uuid.Nil
	if _, err := task.NewEmailSendTask(org, nilInv); err == nil {
		t.Error("email:send with a nil invitation ID accepted")
	}
	if _, err := task.NewAccountEmailTask(withInv); err == nil {
		t.Error("email:account about an invitation accepted")
	}
	tok := uuid.New()
	withTok := validEmail
	withTok.TokenID = &tok
	if m, err := task.NewAccountEmailTask(withTok); err != nil ||
		string(m.Payload) != `{"to":"a@example.com","template":"welcome","data":{"name":"A"},"token_id":"`+tok.String()+`"}` {
		t.Errorf("email:account with a token ID: %s, %v", m.Payload, err)
	}
	if _, err := task.NewEmailSendTask(org, withTok); err == nil {
		t.Error("email:send about an account link accepted")
	}
	nilTok := validEmail
	nilTok.TokenID = &uuid.Nil
	if _, err := task.NewAccountEmailTask(nilTok); err == nil {
		t.Error("email:account with a nil token ID accepted")
	}
	a, err := task.NewAccountEmailTask(validEmail)
	if err != nil || a.Type != task.TypeEmailAccount || a.Queue != task.QueueCritical || a.Headers[outbox.HeaderOrgID] != "" {
		t.Errorf("email:account: %+v, %v", a, err)
	}
}

func TestCanaryAndPeriodicArePlatformTasks(t *testing.T) {
	t.Parallel()
	c, err := task.NewCanaryTask(task.CanaryPayload{SleepMS: 5})
	if err != nil || c.Headers != nil || c.Type != task.TypeCanary {
		t.Errorf("canary: %+v, %v", c, err)
	}
	if _, err := task.NewCanaryTask(task.CanaryPayload{SleepMS: -1}); err == nil {
		t.Error("negative sleep accepted")
	}
	p := task.NewPeriodicTask(task.TypeDeadSync, time.Date(2026, 11, 26, 9, 0, 0, 0, time.FixedZone("x", 3600)))
	if p.Type() != task.TypeDeadSync || string(p.Payload()) != `{"slot":"2026-11-26T08:00:00Z"}` || len(p.Headers()) != 0 {
		t.Errorf("periodic: %s %s %v", p.Type(), p.Payload(), p.Headers())
	}
	defer func() {
		if recover() == nil {
			t.Error("NewPeriodicTask accepted a tenant type")
		}
	}()
	task.NewPeriodicTask(task.TypeEmailSend, time.Now())
}
