package stripeevent_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/stripeevent"
)

// Every built event is one stripe-go v76 accepts as Stripe's own: signed
// with the real scheme, of its pinned API version (ConstructEvent refuses
// any other), its object decoding into stripe-go's type with the facts
// given.
func TestBuiltEventsAreStripes(t *testing.T) {
	const secret = "whsec_test"
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	f := stripeevent.Facts{OrgID: "0190f0e0-0000-7000-8000-000000000001", Created: at, CustomerID: "cus_1",
		SubscriptionID: "sub_1", PriceID: "price_keel_business_yearly", Quantity: 3, InvoiceID: "in_1", Amount: 12000}
	for _, typ := range stripeevent.Types() {
		payload, err := stripeevent.Build(typ, f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := webhook.ConstructEventWithTolerance(payload, stripeevent.Sign(payload, secret, time.Now()), secret, time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if string(ev.Type) != typ || ev.APIVersion != stripe.APIVersion || ev.Created != at.Unix() || !strings.HasPrefix(ev.ID, "evt_") {
			t.Errorf("%s: event %+v", typ, ev)
		}
		raw := ev.Data.Raw
		switch {
		case typ == billing.EventCheckoutCompleted:
			var s stripe.CheckoutSession
			if err := json.Unmarshal(raw, &s); err != nil || s.Customer.ID != "cus_1" || s.Metadata["org_id"] != f.OrgID || s.ClientReferenceID != f.OrgID {
				t.Errorf("%s: %v %+v", typ, err, s)
			}
		case strings.HasPrefix(typ, "customer.subscription."):
			var s stripe.Subscription
			if err := json.Unmarshal(raw, &s); err != nil || s.ID != "sub_1" || s.Customer.ID != "cus_1" ||
				s.Items.Data[0].Price.ID != "price_keel_business_yearly" || s.Items.Data[0].Quantity != 3 ||
				s.Items.Data[0].Price.Recurring.Interval != "year" || s.Metadata["org_id"] != f.OrgID {
				t.Errorf("%s: %v %+v", typ, err, s)
			}
			if (typ == billing.EventSubscriptionDeleted) != (s.Status == stripe.SubscriptionStatusCanceled) {
				t.Errorf("%s: status %s", typ, s.Status)
			}
		default:
			var in stripe.Invoice
			if err := json.Unmarshal(raw, &in); err != nil || in.ID != "in_1" || in.Customer.ID != "cus_1" || in.Subscription.ID != "sub_1" ||
				in.AmountDue != 12000 || in.SubscriptionDetails.Metadata["org_id"] != f.OrgID {
				t.Errorf("%s: %v %+v", typ, err, in)
			}
			if failed := typ == billing.EventInvoicePaymentFailed; failed != (in.Status == stripe.InvoiceStatusOpen) || failed == (in.AmountPaid == 12000) {
				t.Errorf("%s: status %s, paid %d", typ, in.Status, in.AmountPaid)
			}
		}
	}
	if _, err := stripeevent.Build("charge.refunded", f); err == nil || !strings.Contains(err.Error(), "invoice.paid") {
		t.Errorf("unsupported type: %v", err)
	}
}
