package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/config"
)

// ADMIN_DATABASE_URL is optional for the api (the admin API answers 503
// without it), must name another role than DATABASE_URL wherever it is
// read, and ADMIN_QUEUES_TOKEN is refused with a message saying what
// replaced it.
func TestAdminDatabaseURL(t *testing.T) {
	c, err := config.LoadAPI(config.MapEnv(valid()))
	if err != nil || c.AdminDatabaseURL != "" {
		t.Fatalf("without ADMIN_DATABASE_URL: %q, %v", c.AdminDatabaseURL, err)
	}
	const adminURL = "postgres://keel_admin:admin-secret@127.0.0.1:5432/keel"
	c, err = config.LoadAPI(config.MapEnv(with(valid(), "ADMIN_DATABASE_URL", adminURL)))
	if err != nil || c.AdminDatabaseURL != adminURL {
		t.Fatalf("with ADMIN_DATABASE_URL: %q, %v", c.AdminDatabaseURL, err)
	}

	sameRole := with(valid(), "ADMIN_DATABASE_URL", "postgres://app:other@127.0.0.1:5432/keel")
	_, err = config.LoadAPI(config.MapEnv(sameRole))
	wantErr(t, "api, admin as the app role", err, []string{"ADMIN_DATABASE_URL"}, `must connect as its own role`, `not DATABASE_URL's "app"`)
	ctl, err := config.LoadCtl(config.MapEnv(sameRole))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ctl.Migrate()
	wantErr(t, "migrate, admin as the app role", err, []string{"ADMIN_DATABASE_URL"}, `must connect as its own role`)
	_, err = ctl.Admin()
	wantErr(t, "keelctl admin, admin as the app role", err, []string{"ADMIN_DATABASE_URL"}, `must connect as its own role`)

	_, err = config.LoadAPI(config.MapEnv(with(valid(), "ADMIN_DATABASE_URL", "mysql://x@h/db")))
	wantErr(t, "api, not a postgres URL", err, []string{"ADMIN_DATABASE_URL"}, "ADMIN_DATABASE_URL must use scheme postgres or postgresql")

	_, err = config.LoadAPI(config.MapEnv(with(valid(), "ADMIN_QUEUES_TOKEN", strings.Repeat("q", 40))))
	wantErr(t, "api with ADMIN_QUEUES_TOKEN", err, []string{"ADMIN_QUEUES_TOKEN"}, "ADMIN_QUEUES_TOKEN is no longer used", "platform admins logged in with 2FA", "unset it")
}

// keelctl admin needs ADMIN_DATABASE_URL and says so; migrate reads it
// when set.
func TestKeelctlAdminNeedsAdminDatabaseURL(t *testing.T) {
	ctl, err := config.LoadCtl(config.MapEnv(valid()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ctl.Admin()
	wantErr(t, "keelctl admin without it", err, []string{"ADMIN_DATABASE_URL"}, "ADMIN_DATABASE_URL is required", "keelctl migrate up")

	const adminURL = "postgres://keel_admin:admin-secret@127.0.0.1:5432/keel"
	ctl, err = config.LoadCtl(config.MapEnv(with(valid(), "ADMIN_DATABASE_URL", adminURL)))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := ctl.Admin(); err != nil || u != adminURL {
		t.Fatalf("keelctl admin: %q, %v", u, err)
	}
	if m, err := ctl.Migrate(); err != nil || m.AdminURL != adminURL {
		t.Fatalf("migrate: %+v, %v", m, err)
	}
	// Its password never shows in a message.
	ctl, _ = config.LoadCtl(config.MapEnv(with(valid(), "ADMIN_DATABASE_URL", "postgres://app:admin-secret@127.0.0.1:5432/keel")))
	if _, err := ctl.Admin(); err == nil || strings.Contains(err.Error(), "admin-secret") {
		t.Fatalf("error %v", err)
	}
}

func wantErr(t *testing.T, name string, err error, vars []string, parts ...string) {
	t.Helper()
	var ce *config.Error
	if !errors.As(err, &ce) || !slices.Equal(ce.Vars, vars) {
		t.Errorf("%s: error %v, want one naming %v", name, err, vars)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %q lacks %q", name, err, p)
		}
	}
}
