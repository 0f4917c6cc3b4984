-- +goose Up
-- Platform admin (issue 11): disabling users, suspension reasons, the
-- second factor a login was opened with, and platform-level audit rows.

-- A disabled user cannot log in, and every request with one of their
-- access tokens is refused at once (tenant.InOrg and the account routes
-- read disabled_at); disabling also revokes their sessions and the API keys
-- they created. last_login_at is what the admin user view shows.
ALTER TABLE users
    ADD COLUMN disabled_at     timestamptz,
    ADD COLUMN disabled_reason text NOT NULL DEFAULT '',
    ADD COLUMN last_login_at   timestamptz;

ALTER TABLE organizations
    ADD COLUMN suspended_reason text NOT NULL DEFAULT '';

-- The second factor the login (refresh-token family) was opened with:
-- '' (password only), 'totp' or 'recovery_code'. Rotation copies it, so a
-- refreshed access token still says how its login began; /admin/* needs
-- 'totp'.
ALTER TABLE refresh_tokens
    ADD COLUMN second_factor text NOT NULL DEFAULT ''
        CHECK (second_factor IN ('', 'totp', 'recovery_code'));

-- A platform admin's action on no organization (disabling a user, reading
-- a user's record) is audited with org_id NULL: the tenant policy never
-- matches NULL, so only the admin role (BYPASSRLS) reads those rows.
ALTER TABLE audit_log ALTER COLUMN org_id DROP NOT NULL;
-- GET /admin/audit-log lists every organization's entries newest first.
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC, id DESC);
CREATE INDEX users_created_idx ON users (created_at DESC, id DESC);
CREATE INDEX organizations_created_idx ON organizations (created_at DESC, id DESC);

-- +goose Down
DROP INDEX organizations_created_idx;
DROP INDEX users_created_idx;
DROP INDEX audit_log_created_idx;
DELETE FROM audit_log WHERE org_id IS NULL;
ALTER TABLE audit_log ALTER COLUMN org_id SET NOT NULL;
ALTER TABLE refresh_tokens DROP COLUMN second_factor;
ALTER TABLE organizations DROP COLUMN suspended_reason;
ALTER TABLE users DROP COLUMN last_login_at, DROP COLUMN disabled_reason, DROP COLUMN disabled_at;
