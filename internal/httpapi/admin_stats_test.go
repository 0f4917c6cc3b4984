package httpapi_test

import (
	"testing"
	"time"
)

type adminStats struct {
	AsOf          time.Time `json:"as_of"`
	SignupsPerDay []struct {
		Date  string `json:"date"`
		Count int64  `json:"count"`
	} `json:"signups_per_day"`
	ActiveOrganizations   int64 `json:"active_organizations"`
	TrialingOrganizations int64 `json:"trialing_organizations"`
	PayingOrganizations   struct {
		Total  int64 `json:"total"`
		ByPlan []any `json:"by_plan"`
	} `json:"paying_organizations"`
	MRR                []any `json:"mrr"`
	ChurnedThisMonth   int64 `json:"churned_this_month"`
	FailedPaymentsOpen int64 `json:"failed_payments_open"`
}

// GET /admin/stats through the real API: a non-admin is refused, the
// admin's answer matches the document (e.do checks it) and the two
// signups just made, and the reading is audited as a platform row. The
// figures themselves are checked against a seeded data set in
// internal/admin (TestStatsMatchSeededData).
func TestAdminStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	cust := e.signup("stats-customer@example.com", "Customer", "Customer Co")
	adm := e.newPlatformAdmin("stats-admin@example.com")

	e.problem(req{method: "GET", path: "/api/v1/admin/stats", token: cust.AccessToken}, 403, "platform_admin_required")

	// Rows are dated by the database's clock, as_of by the API's: move the
	// latter past the former.
	e.clock.Advance(time.Hour)
	var st adminStats
	e.expect(req{method: "GET", path: "/api/v1/admin/stats", token: adm.AccessToken}, 200, &st)
	if got, want := st.AsOf, e.clock.Now().UTC().Truncate(time.Microsecond); !got.Equal(want) {
		t.Fatalf("as_of %s, want the API clock's %s", got, want)
	}
	if len(st.SignupsPerDay) != 30 || st.SignupsPerDay[29].Date != st.AsOf.Format(time.DateOnly) {
		t.Fatalf("signups_per_day %+v", st.SignupsPerDay)
	}
	var signups int64
	for _, d := range st.SignupsPerDay {
		signups += d.Count
	}
	// Both organizations were just created by their owners (an audited
	// write) and are on the signup trial; nothing is paid yet.
	if signups != 2 || st.ActiveOrganizations != 2 || st.TrialingOrganizations != 2 ||
		st.PayingOrganizations.Total != 0 || len(st.PayingOrganizations.ByPlan) != 0 || len(st.MRR) != 0 ||
		st.ChurnedThisMonth != 0 || st.FailedPaymentsOpen != 0 {
		t.Fatalf("stats %+v", st)
	}

	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id IS NULL
		AND action = 'admin.stats_viewed' AND actor_user_id = $1`, adm.UserID); err != nil || n != 1 {
		t.Fatalf("admin.stats_viewed rows %d %v", n, err)
	}
}
