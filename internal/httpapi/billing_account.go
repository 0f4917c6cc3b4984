package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keelhq/keel/internal/billing"
)

// registerAccount adds the billing endpoints of an organization. Plans are
// behind authentication like the rest of /billing: a signed-in client
// picks a plan for its organization, and nothing here is for anonymous
// visitors (a marketing page reads plans.yaml at build time).
func (h *billingHandlers) registerAccount(v1 *gin.RouterGroup, authn *Authenticator) {
	g := v1.Group("/billing", authn.Required())
	g.GET("/plans", H(h.plans))
	g.GET("", H(h.overview))
	g.GET("/invoices", H(h.invoices))
	// secret: a Checkout or Portal URL is a bearer link to pay or manage
	// the subscription, so an Idempotency-Key never stores it (as an
	// upload URL).
	g.POST("/subscribe", secret(H(h.subscribe)))
	g.POST("/portal", secret(H(h.portal)))
}

func (h *billingHandlers) plans(c *gin.Context) error {
	c.JSON(http.StatusOK, gin.H{"data": h.billing.Offers()})
	return nil
}

type billingPlanRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type billingResponse struct {
	Plan              billingPlanRef    `json:"plan"`
	Status            billing.Status    `json:"status"`
	Interval          *string           `json:"interval"`
	TrialEnd          *time.Time        `json:"trial_end"`
	CurrentPeriodEnd  *time.Time        `json:"current_period_end"`
	CancelAtPeriodEnd bool              `json:"cancel_at_period_end"`
	GraceUntil        *time.Time        `json:"grace_until"`
	Usage             []usageMetric     `json:"usage"`
	Invoices          []invoiceResponse `json:"invoices"`
}

type invoiceResponse struct {
	ID               string     `json:"id"`
	Number           string     `json:"number"`
	Status           string     `json:"status"`
	Currency         string     `json:"currency"`
	AmountDue        int64      `json:"amount_due"`
	AmountPaid       int64      `json:"amount_paid"`
	HostedInvoiceURL string     `json:"hosted_invoice_url,omitempty"`
	InvoicePDF       string     `json:"invoice_pdf,omitempty"`
	PeriodStart      *time.Time `json:"period_start,omitempty"`
	PeriodEnd        *time.Time `json:"period_end,omitempty"`
	AttemptCount     int        `json:"attempt_count"`
	FirstFailedAt    *time.Time `json:"first_failed_at,omitempty"`
	PaidAt           *time.Time `json:"paid_at,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
}

func toInvoices(in []billing.Invoice) []invoiceResponse {
	out := make([]invoiceResponse, len(in))
	for i, v := range in {
		out[i] = invoiceResponse{ID: v.ID, Number: v.Number, Status: v.Status, Currency: v.Currency, AmountDue: v.AmountDue,
			AmountPaid: v.AmountPaid, HostedInvoiceURL: v.HostedInvoiceURL, InvoicePDF: v.InvoicePDF, PeriodStart: utcPtr(v.PeriodStart),
			PeriodEnd: utcPtr(v.PeriodEnd), AttemptCount: v.AttemptCount, FirstFailedAt: utcPtr(v.FirstFailedAt), PaidAt: utcPtr(v.PaidAt),
			CreatedAt: v.Created.UTC()}
	}
	return out
}

// overview is the organization's billing state. The API rate is the
// budget this very request was counted against, as in GET .../usage.
func (h *billingHandlers) overview(c *gin.Context) error {
	var apiUsed *int64
	if res, ok := rateResult(c); ok {
		n := res.Used()
		apiUsed = &n
	}
	o, err := h.billing.Overview(c.Request.Context(), principal(c), apiUsed)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, billingResponse{Plan: billingPlanRef{ID: o.Plan.ID, Name: o.Plan.Name}, Status: o.Status,
		Interval: o.Interval, TrialEnd: utcPtr(o.TrialEnd), CurrentPeriodEnd: utcPtr(o.CurrentPeriodEnd),
		CancelAtPeriodEnd: o.CancelAtPeriodEnd, GraceUntil: utcPtr(o.GraceUntil), Usage: toUsageMetrics(o.Usage, apiUsed != nil),
		Invoices: toInvoices(o.Invoices)})
	return nil
}

func (h *billingHandlers) invoices(c *gin.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	rows, next, err := h.billing.Invoices(c.Request.Context(), principal(c), pg)
	if err != nil {
		return err
	}
	list(c, toInvoices(rows), next)
	return nil
}

type subscribeRequest struct {
	Plan     string `json:"plan"`
	Interval string `json:"interval"`
}

// subscribe answers 200 {checkout_url} to pay at, or 202 {change} when a
// live subscription's plan change was queued.
func (h *billingHandlers) subscribe(c *gin.Context) error {
	var req subscribeRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	out, err := h.billing.Subscribe(c.Request.Context(), principal(c), billing.SubscribeInput{Plan: req.Plan, Interval: req.Interval}, meta(c))
	if err != nil {
		return err
	}
	if out.Change != nil {
		c.JSON(http.StatusAccepted, gin.H{"change": out.Change})
		return nil
	}
	c.JSON(http.StatusOK, gin.H{"checkout_url": out.CheckoutURL})
	return nil
}

func (h *billingHandlers) portal(c *gin.Context) error {
	url, err := h.billing.Portal(c.Request.Context(), principal(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"portal_url": url})
	return nil
}
