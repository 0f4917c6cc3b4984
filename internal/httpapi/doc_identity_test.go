package httpapi_test

import (
	"testing"

	"github.com/keelhq/keel/internal/httpapi"
)

func TestDocumentLoads(t *testing.T) {
	if _, err := httpapi.Document(); err != nil {
		t.Fatal(err)
	}
}
