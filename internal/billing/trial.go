package billing

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
)

// TrialWarning is how long before a signup trial ends its owners are told.
const TrialWarning = 3 * 24 * time.Hour

// TrialResult is what one trial:expire run did (the job run's detail).
type TrialResult struct {
	Trialing int `json:"trialing"`         // organizations found trialing
	Warned   int `json:"warned"`           // trial-ending emails queued
	Expired  int `json:"expired"`          // trials moved to the fallback plan
	Failed   int `json:"failed,omitempty"` // organizations whose transaction failed
}

// trialOutcome is one organization's part of a run; it counts only once its
// transaction committed.
type trialOutcome struct{ warned, expired bool }

// ExpireTrials is trial:expire: for every organization on Keel's own signup
// trial (no Stripe subscription: a Stripe trial ends at Stripe and arrives
// by events), it warns the owners once from TrialWarning before the end and,
// at the end, moves the organization to the fallback plan (status free)
// and tells them. Each organization is handled in its own tenant
// transaction holding its subscriptions row lock, and each email is keyed
// by the trial's end (Notify), so runs that repeat or overlap send each
// email once. A trial already over when first seen gets only the "ended"
// email: warning of an end that has passed would be noise.
func (s *Service) ExpireTrials(ctx context.Context) (TrialResult, error) {
	var res TrialResult
	orgs, err := s.Store.OrgsWithStatus(ctx, s.DB, Trialing)
	if err != nil {
		return res, err
	}
	res.Trialing = len(orgs)
	res.Failed, err = s.eachOrg(ctx, orgs, "trial", func(tx *sqlx.Tx, org uuid.UUID) (func(), error) {
		out, err := s.expireTrial(ctx, tx, org)
		return func() {
			res.Warned += count(out.warned)
			res.Expired += count(out.expired)
		}, err
	})
	return res, err
}

func (s *Service) expireTrial(ctx context.Context, tx *sqlx.Tx, org uuid.UUID) (trialOutcome, error) {
	var out trialOutcome
	a, err := s.LockAccount(ctx, tx, org)
	if err != nil {
		return out, err
	}
	// Listed before the lock: another run may have expired it meanwhile.
	if a.Status != Trialing || a.SubscriptionID != nil || a.TrialEnd == nil {
		return out, nil
	}
	now, end := s.now(), a.TrialEnd.UTC()
	trialed, fallback := a.Plan(s.Plans), s.Plans.FallbackPlan()
	data := map[string]string{"plan": trialed.Name, "fallback": fallback.Name, "trial_end": Day(end)}
	unix := strconv.FormatInt(end.Unix(), 10)
	if now.Before(end) {
		if now.Before(end.Add(-TrialWarning)) {
			return out, nil
		}
		data["days"] = strconv.Itoa(daysLeft(now, end))
		out.warned, err = s.Notify(ctx, tx, org, "trial-ending:signup:"+unix, MailTrialEnding, data)
		return out, err
	}
	a.Status, a.PlanID, a.Interval = Free, nil, nil
	if err := s.Store.SaveAccount(ctx, tx, a, now); err != nil {
		return out, err
	}
	err = audit.Record(ctx, tx, audit.Entry{OrgID: org, Action: "billing.trial_expired", TargetType: "organization",
		TargetID: org.String()}.WithDetails(map[string]any{"plan": trialed.ID, "fallback": fallback.ID, "trial_end": end}))
	if err != nil {
		return out, err
	}
	s.Metrics.StateChanged(Free)
	out.expired = true
	_, err = s.Notify(ctx, tx, org, "trial-ended:signup:"+unix, MailTrialEnded, data)
	return out, err
}

// daysLeft counts the days until end, a part day as a whole one (2 days
// and an hour left reads "3 days").
func daysLeft(now, end time.Time) int {
	d := end.Sub(now)
	n := int(d / (24 * time.Hour))
	if d%(24*time.Hour) > 0 {
		n++
	}
	return n
}

func count(b bool) int {
	if b {
		return 1
	}
	return 0
}
