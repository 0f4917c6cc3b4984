// Package idempotencydb keeps idempotency keys and their stored responses
// (idempotency_keys, under the tenant's Row Level Security).
package idempotencydb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/idempotency"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Store is the keys' store; its methods run on the tenant transaction they
// are given.
type Store struct{}

var _ idempotency.Store = Store{}

// Claim implements idempotency.Store. One upsert both inserts a new key and
// takes over a dead one; the row lock of ON CONFLICT makes concurrent
// claims of one key serialize, so exactly one of them claims it.
func (Store) Claim(ctx context.Context, tx sqlx.ExtContext, s idempotency.Scope, c idempotency.Claim) (bool, error) {
	const q = `INSERT INTO idempotency_keys (org_id, credential, key, fingerprint, lock_id, locked_until, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (org_id, credential, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, lock_id = EXCLUDED.lock_id,
			locked_until = EXCLUDED.locked_until, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
			status = NULL, header = NULL, body = NULL, unreplayable = false
		WHERE idempotency_keys.expires_at <= EXCLUDED.created_at
			OR (idempotency_keys.status IS NULL AND idempotency_keys.locked_until <= EXCLUDED.created_at
				AND idempotency_keys.fingerprint = EXCLUDED.fingerprint)
		RETURNING lock_id`
	var got uuid.UUID
	err := sqlx.GetContext(ctx, tx, &got, q, s.OrgID, s.Credential, s.Key, c.Fingerprint, c.LockID, c.LockedUntil, c.Now, c.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim idempotency key: %w", err)
	}
	return got == c.LockID, nil
}

type row struct {
	Fingerprint  []byte         `db:"fingerprint"`
	LockID       uuid.UUID      `db:"lock_id"`
	LockedUntil  time.Time      `db:"locked_until"`
	ExpiresAt    time.Time      `db:"expires_at"`
	Status       sql.NullInt32  `db:"status"`
	Header       sql.NullString `db:"header"`
	Body         []byte         `db:"body"`
	Unreplayable bool           `db:"unreplayable"`
}

// Get implements idempotency.Store.
func (Store) Get(ctx context.Context, tx sqlx.QueryerContext, s idempotency.Scope) (*idempotency.Record, error) {
	const q = `SELECT fingerprint, lock_id, locked_until, expires_at, status, header, body, unreplayable
		FROM idempotency_keys WHERE org_id = $1 AND credential = $2 AND key = $3`
	var r row
	if err := sqlx.GetContext(ctx, tx, &r, q, s.OrgID, s.Credential, s.Key); err != nil {
		return nil, postgres.Translate(err)
	}
	rec := &idempotency.Record{Fingerprint: r.Fingerprint, LockID: r.LockID, LockedUntil: r.LockedUntil, ExpiresAt: r.ExpiresAt}
	if r.Status.Valid {
		resp := &idempotency.Response{Status: int(r.Status.Int32), Body: r.Body, Unreplayable: r.Unreplayable}
		if r.Header.Valid {
			if err := json.Unmarshal([]byte(r.Header.String), &resp.Header); err != nil {
				return nil, fmt.Errorf("idempotency key header: %w", err)
			}
		}
		rec.Response = resp
	}
	return rec, nil
}

// Complete implements idempotency.Store. An unreplayable response keeps its
// status only: no header and no body reach the table.
func (Store) Complete(ctx context.Context, tx sqlx.ExecerContext, s idempotency.Scope, lockID uuid.UUID, r idempotency.Response) (bool, error) {
	var header, body any
	if !r.Unreplayable {
		h, err := json.Marshal(r.Header)
		if err != nil {
			return false, err
		}
		header, body = string(h), r.Body
		if r.Body == nil {
			body = []byte{}
		}
	}
	const q = `UPDATE idempotency_keys SET status = $5, header = $6, body = $7, unreplayable = $8
		WHERE org_id = $1 AND credential = $2 AND key = $3 AND lock_id = $4 AND status IS NULL`
	res, err := tx.ExecContext(ctx, q, s.OrgID, s.Credential, s.Key, lockID, r.Status, header, body, r.Unreplayable)
	if err != nil {
		return false, fmt.Errorf("complete idempotency key: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Release implements idempotency.Store.
func (Store) Release(ctx context.Context, tx sqlx.ExecerContext, s idempotency.Scope, lockID uuid.UUID) error {
	const q = `DELETE FROM idempotency_keys WHERE org_id = $1 AND credential = $2 AND key = $3 AND lock_id = $4 AND status IS NULL`
	if _, err := tx.ExecContext(ctx, q, s.OrgID, s.Credential, s.Key, lockID); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
