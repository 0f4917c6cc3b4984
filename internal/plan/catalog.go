// Package plan is Keel's plans and their limits: the catalog read from
// plans.yaml, which plan an organization is on, and the limits engine that
// counts usage and refuses a write that would pass a limit.
package plan

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/keelhq/keel/config"
)

// Unlimited is the limit of a metric a plan does not cap.
const Unlimited int64 = -1

// Metric is a counted, limited quantity.
type Metric string

// The metrics a plan limits.
const (
	Resources    Metric = "resources"
	StorageBytes Metric = "storage_bytes"
	Seats        Metric = "seats"
	// APIRequestsPerMinute is a rate, enforced in Redis, not a counter.
	APIRequestsPerMinute Metric = "api_requests_per_minute"
)

// Metrics lists every metric in the order the API reports them.
var Metrics = []Metric{Seats, Resources, StorageBytes, APIRequestsPerMinute}

// Limits are a plan's caps; Unlimited where it sets none.
type Limits struct {
	Seats                int64 `json:"seats"`
	Resources            int64 `json:"resources"`
	StorageBytes         int64 `json:"storage_bytes"`
	APIRequestsPerMinute int64 `json:"api_requests_per_minute"`
}

// Of returns the limit of m.
func (l Limits) Of(m Metric) int64 {
	switch m {
	case Seats:
		return l.Seats
	case Resources:
		return l.Resources
	case StorageBytes:
		return l.StorageBytes
	case APIRequestsPerMinute:
		return l.APIRequestsPerMinute
	}
	return Unlimited
}

// Prices are a plan's Stripe price IDs; empty for a plan nobody pays for.
type Prices struct {
	Monthly string `json:"monthly,omitempty"`
	Yearly  string `json:"yearly,omitempty"`
}

// Plan is one plan of the catalog.
type Plan struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Prices    Prices `json:"prices"`
	TrialDays int    `json:"trial_days"`
	// PerSeat plans bill by members: the subscription's quantity follows
	// the organization's member count.
	PerSeat bool   `json:"per_seat"`
	Limits  Limits `json:"limits"`
}

// Catalog is the validated plans file.
type Catalog struct {
	Plans []Plan
	// Default is the plan of a new organization; Fallback where an
	// organization goes when its trial ends or its subscription is canceled.
	Default  string
	Fallback string
	// SignupTrial starts a new organization on a trial of Default (its
	// trial_days, no card needed); false, or a Default without trial days,
	// starts it on Fallback.
	SignupTrial bool
	// GraceDays is how long an organization whose payment failed keeps
	// full access (past_due) before it becomes read-only.
	GraceDays int
	byID      map[string]int
}

// Paid reports whether p can be subscribed to (it has a Stripe price).
func (p Plan) Paid() bool { return p.Prices.Monthly != "" || p.Prices.Yearly != "" }

// PriceFor returns p's Stripe price for interval ("month" or "year").
func (p Plan) PriceFor(interval string) (string, bool) {
	switch interval {
	case "month":
		return p.Prices.Monthly, p.Prices.Monthly != ""
	case "year":
		return p.Prices.Yearly, p.Prices.Yearly != ""
	}
	return "", false
}

// ByPrice returns the plan and interval of a Stripe price ID.
func (c *Catalog) ByPrice(price string) (Plan, string, bool) {
	if price == "" {
		return Plan{}, "", false
	}
	for _, p := range c.Plans {
		switch price {
		case p.Prices.Monthly:
			return p, "month", true
		case p.Prices.Yearly:
			return p, "year", true
		}
	}
	return Plan{}, "", false
}

// Get returns the plan with id.
func (c *Catalog) Get(id string) (Plan, bool) {
	i, ok := c.byID[id]
	if !ok {
		return Plan{}, false
	}
	return c.Plans[i], true
}

// DefaultPlan is the plan of a new organization.
func (c *Catalog) DefaultPlan() Plan { p, _ := c.Get(c.Default); return p }

// FallbackPlan is the plan after a trial or a cancellation.
func (c *Catalog) FallbackPlan() Plan { p, _ := c.Get(c.Fallback); return p }

// Load reads the plans file at path, or the embedded default when path is
// empty, and validates it.
func Load(path string) (*Catalog, error) {
	b := config.Plans
	if path != "" {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("plans: %w", err)
		}
	} else {
		path = "embedded plans.yaml"
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("plans (%s): %w", path, err)
	}
	return c, nil
}

type fileLimit struct {
	v   int64
	set bool
}

func (f *fileLimit) UnmarshalYAML(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "unlimited" || s == "null" || s == "~" {
		f.v, f.set = Unlimited, true
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("a limit is a whole number >= 0 or `unlimited`, got %q", s)
	}
	f.v, f.set = n, true
	return nil
}

type file struct {
	Default     string `yaml:"default"`
	Fallback    string `yaml:"fallback"`
	SignupTrial *bool  `yaml:"signup_trial"`
	GraceDays   *int   `yaml:"grace_days"`
	Plans       []struct {
		ID        string `yaml:"id"`
		Name      string `yaml:"name"`
		TrialDays int    `yaml:"trial_days"`
		PerSeat   bool   `yaml:"per_seat"`
		Prices    struct {
			Monthly string `yaml:"monthly"`
			Yearly  string `yaml:"yearly"`
		} `yaml:"prices"`
		Limits struct {
			Seats                *fileLimit `yaml:"seats"`
			Resources            *fileLimit `yaml:"resources"`
			StorageBytes         *fileLimit `yaml:"storage_bytes"`
			APIRequestsPerMinute *fileLimit `yaml:"api_requests_per_minute"`
		} `yaml:"limits"`
	} `yaml:"plans"`
}

var priceID = regexp.MustCompile(`^price_[A-Za-z0-9_]{1,200}$`)

var planID = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,39}$`)

// Parse validates a plans file, naming every problem at once.
func Parse(b []byte) (*Catalog, error) {
	var f file
	if err := yaml.UnmarshalWithOptions(b, &f, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("%s", yaml.FormatError(err, false, true))
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	c := &Catalog{Default: f.Default, Fallback: f.Fallback, SignupTrial: true, GraceDays: 10, byID: map[string]int{}}
	if f.SignupTrial != nil {
		c.SignupTrial = *f.SignupTrial
	}
	if f.GraceDays != nil {
		c.GraceDays = *f.GraceDays
		if c.GraceDays < 0 || c.GraceDays > 60 {
			bad("grace_days: must be 0..60, got %d", c.GraceDays)
		}
	}
	prices := map[string]string{}
	lim := func(l *fileLimit) int64 {
		if l == nil || !l.set {
			return Unlimited
		}
		return l.v
	}
	for i, p := range f.Plans {
		if _, dup := c.byID[p.ID]; dup {
			bad("plans[%d].id: %q appears twice", i, p.ID)
		} else if !planID.MatchString(p.ID) {
			bad("plans[%d].id: %q is not a plan id (lowercase letters, digits, - and _, up to 40)", i, p.ID)
		}
		if strings.TrimSpace(p.Name) == "" {
			bad("plans[%d].name: is required", i)
		}
		if p.TrialDays < 0 || p.TrialDays > 365 {
			bad("plans[%d].trial_days: must be 0..365, got %d", i, p.TrialDays)
		}
		for _, pr := range []string{p.Prices.Monthly, p.Prices.Yearly} {
			if pr == "" {
				continue
			}
			if !priceID.MatchString(pr) {
				bad("plans[%d].prices: %q is not a Stripe price ID (price_...)", i, pr)
			} else if other, dup := prices[pr]; dup {
				bad("plans[%d].prices: %q is also a price of plan %q", i, pr, other)
			}
			prices[pr] = p.ID
		}
		c.byID[p.ID] = len(c.Plans)
		c.Plans = append(c.Plans, Plan{
			ID: p.ID, Name: p.Name, TrialDays: p.TrialDays, PerSeat: p.PerSeat,
			Prices: Prices{Monthly: p.Prices.Monthly, Yearly: p.Prices.Yearly},
			Limits: Limits{
				Seats:                lim(p.Limits.Seats),
				Resources:            lim(p.Limits.Resources),
				StorageBytes:         lim(p.Limits.StorageBytes),
				APIRequestsPerMinute: lim(p.Limits.APIRequestsPerMinute),
			},
		})
	}
	if len(c.Plans) == 0 {
		bad("plans: at least one plan is required")
	}
	if _, ok := c.Get(c.Default); !ok {
		bad("default: %q is not a plan of this file", c.Default)
	}
	if fb, ok := c.Get(c.Fallback); !ok {
		bad("fallback: %q is not a plan of this file", c.Fallback)
	} else if fb.Paid() {
		bad("fallback: %q has Stripe prices; the fallback is where unpaid organizations go, so it must be free", c.Fallback)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}
