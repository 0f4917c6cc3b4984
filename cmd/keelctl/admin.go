package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/platform/postgres"
)

const adminUsage = `  admin grant EMAIL
                   make EMAIL's account a platform admin (as ADMIN_DATABASE_URL);
                   /api/v1/admin then needs its 2FA login
  admin revoke EMAIL
                   take platform admin away; refused from the next request on
`

// runAdmin grants or revokes platform admin. It is the only way to change
// the flag: the API has no route for it, and the audit row it writes (a
// platform row) names the operator who ran it and where.
func runAdmin(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	if len(args) != 2 || (args[0] != "grant" && args[0] != "revoke") {
		return fmt.Errorf("%w: admin needs grant EMAIL or revoke EMAIL", errUsage)
	}
	url, err := cfg.Admin()
	if err != nil {
		return err
	}
	db, err := postgres.Open(url, postgres.Options{MaxOpenConns: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	grant, email := args[0] == "grant", args[1]
	id, err := admin.SetPlatformAdmin(ctx, db, email, grant, operator())
	if errors.Is(err, admin.ErrNoSuchUser) {
		return fmt.Errorf("no account has the email address %s: the user must sign up first", email)
	}
	if err != nil {
		return err
	}
	if !grant {
		fmt.Fprintf(out, "revoked platform admin from %s (user %s); their next /api/v1/admin request is refused\n", email, id)
		return nil
	}
	fmt.Fprintf(out, "granted platform admin to %s (user %s)\n", email, id)
	fmt.Fprintln(out, "before /api/v1/admin works, they must enable 2FA (POST /api/v1/auth/2fa/setup, then /enable)")
	fmt.Fprintln(out, "and log in again with an authenticator (TOTP) code; a recovery-code login is not enough")
	return nil
}

// operator names who ran the command, for the audit row: $USER@hostname.
func operator() string {
	who := os.Getenv("USER")
	if who == "" {
		who = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return who + "@" + host
}
