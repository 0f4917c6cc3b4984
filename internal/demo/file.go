package demo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// FileName and FileBody are the demo file: a small text file, so a
// newcomer sees a ready file with a download link.
const (
	FileName = "welcome.txt"
	FileBody = "Welcome to Keel!\n\nkeelctl seed-demo uploaded this file. Files live in S3 under\norgs/{org_id}/files/{file_id}; GET /api/v1/files/{id} returns a download link.\n"
)

// SeedFile adds the demo file, ready, to the oldest live resource of the
// demo organization ("Acme Demo", owned by OwnerEmail), uploaded by the
// demo owner, and says what it did on w. It changes nothing when files is
// nil (S3_BUCKET unset), when the demo or a resource of it does not exist,
// or when that resource already has the file, so it can run after every
// Seed.
func SeedFile(ctx context.Context, db *sqlx.DB, files *file.Service, w io.Writer) error {
	if files == nil || files.Objects == nil {
		fmt.Fprintln(w, "No demo file: S3_BUCKET is not set.")
		return nil
	}
	owner, err := authdb.Store{}.UserByEmail(ctx, db, OwnerEmail)
	if err != nil {
		return fmt.Errorf("seed demo file: demo owner: %w", err)
	}
	ms, err := orgdb.Store{}.UserMemberships(ctx, db, owner.ID)
	if err != nil {
		return err
	}
	var orgID uuid.UUID
	for _, m := range ms {
		if m.OrgName == "Acme Demo" {
			orgID = m.OrgID
		}
	}
	if orgID == uuid.Nil {
		fmt.Fprintln(w, "No demo file: the demo organization is missing.")
		return nil
	}
	var res uuid.UUID
	var has bool
	err = postgres.InTx(ctx, db, orgID, func(tx *sqlx.Tx) error {
		var err error
		if res, err = files.Store.FirstResource(ctx, tx, orgID); err != nil {
			return err
		}
		existing, err := files.Store.List(ctx, tx, orgID, res, nil, 100)
		for _, f := range existing {
			has = has || f.Filename == FileName
		}
		return err
	})
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		fmt.Fprintln(w, "No demo file: the demo organization has no resource.")
		return nil
	case err != nil:
		return err
	case has:
		return nil
	}
	f, err := files.AddReady(ctx, orgID, res, &owner.ID, FileName, "text/plain", []byte(FileBody))
	if err != nil {
		return fmt.Errorf("seed demo file: %w", err)
	}
	fmt.Fprintf(w, "Demo file %s (%s) on resource %s.\n", f.Filename, f.ID, res)
	return nil
}
