-- +goose Up
-- The audit log records the request an action came from and, for support
-- access, the user a platform admin acted for.
ALTER TABLE audit_log
    ADD COLUMN acting_for_user_id uuid,
    ADD COLUMN request_id text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audit_log
    DROP COLUMN request_id,
    DROP COLUMN acting_for_user_id;
