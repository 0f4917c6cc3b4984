package admin_test

import (
	"os"
	"testing"

	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }
