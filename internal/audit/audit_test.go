package audit_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/tenant"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

func TestClean(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"Mozilla/5.0", 512, "Mozilla/5.0"},
		{"a\xffb", 10, "a\uFFFDb"},
		{"a\x00b", 10, "ab"},
		{"żółw🐢", 4, "żółw"},
		{"żółw🐢", 5, "żółw🐢"},
		{"🐢🐢🐢", 2, "🐢🐢"},
		{strings.Repeat("é", 600), 512, strings.Repeat("é", 512)},
	} {
		got := audit.Clean(c.in, c.max)
		if got != c.want || !utf8.ValidString(got) {
			t.Errorf("Clean(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

// Whatever a client sends as its user agent (invalid UTF-8, NUL bytes, a
// megabyte of text), the audit write succeeds and stores clean text, with
// the actor, acting-for user and request ID.
func TestRecordAndList(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	org, user, admin := uuid.New(), uuid.New(), uuid.New()
	if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'A')`, org); err != nil {
		t.Fatal(err)
	}
	ctx := logging.WithRequestID(context.Background(), "req-123")
	hostile := "bot\x00\xff\xfe" + strings.Repeat("ü", 1<<20)
	p := &tenant.Principal{UserID: user, OrgID: org, Role: tenant.RoleOwner}
	err := postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error {
		e := audit.By(p, audit.Meta{IP: "203.0.113.9", UserAgent: hostile}, "member.role_changed", "user", user.String()).
			WithDetails(map[string]string{"name": "Zoë\xff"})
		e.ActingForUserID = &admin
		if err := audit.Record(ctx, tx, e); err != nil {
			return err
		}
		// An API key's entry names the key, not a user.
		key := &tenant.Principal{APIKeyID: uuid.New(), OrgID: org, Role: tenant.RoleAdmin}
		return audit.Record(ctx, tx, audit.By(key, audit.Meta{}, "api_key.used", "", "").WithDetails("plain"))
	})
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	var got []audit.Entry
	err = postgres.InTx(ctx, db.App, org, func(tx *sqlx.Tx) error {
		var err error
		got, err = audit.List(ctx, tx, org, audit.Filter{}, nil, 10)
		return err
	})
	if err != nil || len(got) != 2 {
		t.Fatalf("list: %d entries, %v", len(got), err)
	}
	keyEntry, userEntry := got[0], got[1]
	if userEntry.Action != "member.role_changed" {
		keyEntry, userEntry = userEntry, keyEntry
	}
	if userEntry.RequestID != "req-123" || userEntry.ActingForUserID == nil || *userEntry.ActingForUserID != admin ||
		userEntry.ActorUserID == nil || *userEntry.ActorUserID != user || userEntry.ActorAPIKeyID != nil {
		t.Fatalf("user entry %+v", userEntry)
	}
	if n := utf8.RuneCountInString(userEntry.UserAgent); n != 512 || !strings.HasPrefix(userEntry.UserAgent, "bot\uFFFDü") {
		t.Fatalf("user agent stored as %d characters: %.20q", n, userEntry.UserAgent)
	}
	var d map[string]string
	if err := json.Unmarshal(userEntry.Details, &d); err != nil || d["name"] != "Zoë\uFFFD" {
		t.Fatalf("details %s: %v", userEntry.Details, err)
	}
	if keyEntry.ActorAPIKeyID == nil || keyEntry.ActorUserID != nil || !strings.Contains(string(keyEntry.Details), `"value"`) {
		t.Fatalf("api key entry %+v %s", keyEntry, keyEntry.Details)
	}

	// The audit log is tenant data: another organization's transaction sees none of it.
	err = postgres.InTx(ctx, db.App, uuid.New(), func(tx *sqlx.Tx) error {
		got, err = audit.List(ctx, tx, org, audit.Filter{}, nil, 10)
		return err
	})
	if err != nil || len(got) != 0 {
		t.Fatalf("another tenant read %d entries (%v)", len(got), err)
	}
}
