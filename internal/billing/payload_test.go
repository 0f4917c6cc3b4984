package billing

import (
	"encoding/json"
	"testing"
)

// A reference Stripe may expand reads the same as an ID, or as null.
func TestRefReadsIDsAndExpandedObjects(t *testing.T) {
	var v struct {
		A, B, C ref
	}
	if err := json.Unmarshal([]byte(`{"A":"cus_1","B":{"id":"cus_2","object":"customer"},"C":null}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != "cus_1" || v.B != "cus_2" || v.C != "" {
		t.Fatalf("%+v", v)
	}
}

// Every failure event of an invoice reports the same first failure (its
// finalization), whatever the event's own time; an invoice without one
// falls back to the event's time, and a finalization after the event
// cannot be the failure's.
func TestInvoiceFailedAt(t *testing.T) {
	fin := int64(1_700_000_000)
	in := invoiceIn{}
	in.StatusTransitions.FinalizedAt = &fin
	for _, created := range []int64{fin + 60, fin + 3*86400} {
		if got := in.failedAt(eventIn{Created: created}); got.Unix() != fin {
			t.Errorf("event at %d: failed at %d", created, got.Unix())
		}
	}
	if got := (invoiceIn{}).failedAt(eventIn{Created: fin}); got.Unix() != fin {
		t.Errorf("without finalization: %d", got.Unix())
	}
	if got := in.failedAt(eventIn{Created: fin - 1}); got.Unix() != fin-1 {
		t.Errorf("finalized after the event: %d", got.Unix())
	}
}
