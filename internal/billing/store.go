package billing

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// ErrNotFound is a Store's answer for a missing row.
var ErrNotFound = errors.New("billing: not found")

// Recipient is someone a billing email goes to (an owner).
type Recipient struct {
	Email string `db:"email"`
	Name  string `db:"name"`
}

// Store is billing's persistence. Tenant rows (subscriptions, invoices,
// billing_notices) are read and written in the organization's tenant
// transaction; events and customers are platform rows.
type Store interface {
	// Account returns orgID's subscriptions row; lock takes its row lock
	// until tx ends (every change of an organization's billing state takes
	// it, so they run one at a time). ErrNotFound when there is none.
	Account(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, lock bool) (*Account, error)
	// CreateAccount inserts a (its OrgID's first row); an existing row is
	// kept and created is false.
	CreateAccount(ctx context.Context, tx sqlx.ExtContext, a *Account) (created bool, err error)
	// SaveAccount writes every field of a, bumps its version and sets
	// updated_at to now.
	SaveAccount(ctx context.Context, tx sqlx.ExtContext, a *Account, now time.Time) error
	// PlanOf returns orgID's plan ID (nil: fallback) and status, from the
	// snapshot of the transaction q is in, tenant set or not. found is
	// false for an organization without a row.
	PlanOf(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) (planID *string, status Status, found bool, err error)
	// PlanGuard is a keel_assume guard for a one-message write: it fails
	// unless PlanOf, run where the guard runs, would answer planID,
	// status and found.
	PlanGuard(orgID uuid.UUID, planID *string, status Status, found bool) postgres.Stmt
	// OrgsWithStatus lists the organizations in any of statuses (platform
	// jobs: trial expiry, dunning).
	OrgsWithStatus(ctx context.Context, q sqlx.QueryerContext, statuses ...Status) ([]uuid.UUID, error)

	// Invoice returns one invoice, locked until tx ends; ErrNotFound.
	Invoice(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, id string) (*Invoice, error)
	// SaveInvoice inserts or replaces an invoice.
	SaveInvoice(ctx context.Context, tx sqlx.ExtContext, inv *Invoice, now time.Time) error
	// Invoices lists orgID's invoices, newest first, after the cursor
	// (created, id) when set.
	Invoices(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, before *InvoiceCursor, limit int) ([]Invoice, error)
	// InvoiceFacts returns, for subscription subID, when the oldest open
	// invoice that failed first failed (nil when none is unpaid) and when
	// its latest invoice was paid (nil when none was).
	InvoiceFacts(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, subID string) (unpaidSince, lastPaid *time.Time, err error)
	// UnpaidInvoices lists subscription subID's open failed invoices,
	// oldest failure first (dunning).
	UnpaidInvoices(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, subID string) ([]Invoice, error)

	// Notice records the notice key of orgID; first is false when it was
	// recorded before (its email is not sent again).
	Notice(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, key string) (first bool, err error)
	// Owners lists orgID's owners, who get billing email.
	Owners(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) ([]Recipient, error)
	// Members counts orgID's members (per-seat quantity).
	Members(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) (int, error)

	// OrgOfCustomer returns the organization of a Stripe customer.
	OrgOfCustomer(ctx context.Context, q sqlx.QueryerContext, customerID string) (uuid.UUID, bool, error)
	// LinkCustomer records customerID as orgID's, in orgID's tenant
	// transaction (idempotent); it fails when either is linked to another.
	LinkCustomer(ctx context.Context, tx sqlx.ExtContext, customerID string, orgID uuid.UUID) error
	// Customers lists every linked customer and its organization
	// (reconciliation).
	Customers(ctx context.Context, q sqlx.QueryerContext) ([]CustomerLink, error)

	// AcceptEvent stores e unless its ID is stored and, only when it
	// stores it, the outbox row (and wakes the relays), atomically on db;
	// inserted says which.
	AcceptEvent(ctx context.Context, db sqlx.QueryerContext, e *Event, row outbox.Row) (inserted bool, err error)
	// Event returns a stored event; lock takes its row lock until tx ends.
	Event(ctx context.Context, q sqlx.QueryerContext, id string, lock bool) (*Event, error)
	// FinishEvent marks an event applied or ignored, with a note (which
	// organization it was for, or why it was ignored).
	FinishEvent(ctx context.Context, tx sqlx.ExtContext, id, status, note string, now time.Time) error
	// FailEvent counts a failed application and keeps its error.
	FailEvent(ctx context.Context, q sqlx.ExecerContext, id, msg string) error
	// ResetEvent puts an event back to pending (replay).
	ResetEvent(ctx context.Context, tx sqlx.ExtContext, id string) error
	// EventIDsSince lists which of ids are stored (reconciliation's
	// backfill asks for the last days' events).
	StoredEventIDs(ctx context.Context, q sqlx.QueryerContext, ids []string) (map[string]bool, error)

	// Account API (plans, Checkout, the Portal, plan changes).

	// Payer returns what Checkout needs of orgID and of the owner userID
	// paying; ErrNotFound when either is missing.
	Payer(ctx context.Context, q sqlx.QueryerContext, orgID, userID uuid.UUID) (*Payer, error)
}

// Payer is the organization and the owner who subscribes it.
type Payer struct {
	OrgName       string `db:"org_name"`
	Email         string `db:"email"`
	EmailVerified bool   `db:"email_verified"`
}

// CustomerLink is a Stripe customer and its organization.
type CustomerLink struct {
	CustomerID string    `db:"stripe_customer_id"`
	OrgID      uuid.UUID `db:"org_id"`
}

// InvoiceCursor is a position in an invoice list.
type InvoiceCursor struct {
	Created time.Time
	ID      string
}
