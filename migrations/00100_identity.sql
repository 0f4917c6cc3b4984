-- +goose Up
-- Identity and tenancy. users, organizations, refresh_tokens, email_tokens
-- and totp_recovery_codes are platform tables: they are reached only through
-- code paths keyed by the authenticated user (or a hashed token), never listed
-- per tenant. memberships, invitations, api_keys and audit_log belong to one
-- organization each and are guarded by Row Level Security.

CREATE TABLE users (
    id                uuid PRIMARY KEY,
    email             text        NOT NULL,
    name              text        NOT NULL,
    password_hash     text        NOT NULL,
    email_verified_at timestamptz,
    -- AES-GCM ciphertext of the TOTP secret; set by 2fa/setup, live once
    -- totp_enabled_at is set.
    totp_secret       bytea,
    totp_enabled_at   timestamptz,
    -- The last accepted TOTP time step: a code is accepted once.
    totp_last_step    bigint      NOT NULL DEFAULT 0,
    is_platform_admin boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_lower CHECK (email = lower(email))
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE organizations (
    id           uuid PRIMARY KEY,
    name         text        NOT NULL,
    suspended_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per issued refresh token. Tokens of one login share family_id;
-- presenting a rotated token revokes the family. active_org_id is the
-- organization the session is switched to (NULL while the user belongs to
-- none), not an owner: sessions are the user's, so this is not a tenant table.
CREATE TABLE refresh_tokens (
    id            uuid PRIMARY KEY,
    family_id     uuid        NOT NULL,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    active_org_id uuid        REFERENCES organizations (id) ON DELETE SET NULL,
    token_hash    bytea       NOT NULL,
    expires_at    timestamptz NOT NULL,
    rotated_at    timestamptz,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- Email verification and password reset tokens: SHA-256 of a 256-bit random
-- value, single use, expiring. email is the address being verified (it
-- differs from users.email during an email change).
CREATE TABLE email_tokens (
    id         uuid PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    email      text        NOT NULL,
    token_hash bytea       NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX email_tokens_hash_key ON email_tokens (token_hash);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose);

CREATE TABLE totp_recovery_codes (
    id         uuid PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea       NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX totp_recovery_codes_user_idx ON totp_recovery_codes (user_id);

-- Tenant tables.
CREATE TABLE memberships (
    org_id     uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE invitations (
    id          uuid PRIMARY KEY,
    org_id      uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email       text        NOT NULL CHECK (email = lower(email)),
    role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_hash  bytea       NOT NULL,
    invited_by  uuid        REFERENCES users (id) ON DELETE SET NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX invitations_token_key ON invitations (token_hash);
-- One pending invitation per address and organization: a re-invite replaces it.
CREATE UNIQUE INDEX invitations_pending_key ON invitations (org_id, email) WHERE accepted_at IS NULL;
CREATE INDEX invitations_org_idx ON invitations (org_id, created_at DESC, id);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    org_id       uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('admin', 'member')),
    prefix       text        NOT NULL,
    secret_hash  bytea       NOT NULL,
    created_by   uuid        REFERENCES users (id) ON DELETE SET NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX api_keys_prefix_key ON api_keys (prefix);
CREATE INDEX api_keys_org_idx ON api_keys (org_id, created_at DESC, id);

CREATE TABLE audit_log (
    id               uuid PRIMARY KEY,
    org_id           uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    actor_user_id    uuid,
    actor_api_key_id uuid,
    action           text        NOT NULL,
    target_type      text        NOT NULL DEFAULT '',
    target_id        text        NOT NULL DEFAULT '',
    ip               text        NOT NULL DEFAULT '',
    user_agent       text        NOT NULL DEFAULT '',
    details          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_org_idx ON audit_log (org_id, created_at DESC, id DESC);

-- The policies compare with NULLIF(current_setting('app.org_id', true), ''):
-- once a pooled connection has run a tenant transaction the setting reads
-- '' instead of NULL, and '' must mean "no tenant" (no rows), not a cast error.
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- Three questions are asked before the tenant is known: which organizations
-- a user belongs to (login, GET /me), which key a presented API key prefix
-- names, and which invitation a presented token hash names. Each is answered
-- by a SECURITY DEFINER function owned by the migration owner that returns
-- only the minimal row for an exact key, so the application role never reads
-- a tenant table without app.org_id and RLS is never turned off.
--
-- FORCE ROW LEVEL SECURITY binds the owner too, so a non-superuser owner
-- gets a read-only policy of its own; it could ALTER TABLE anyway, so this
-- grants nothing new. The application role is never the owner
-- (keelctl migrate refuses that).
CREATE POLICY definer_lookup ON memberships FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY definer_lookup ON api_keys FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY definer_lookup ON invitations FOR SELECT TO CURRENT_USER USING (true);

-- +goose StatementBegin
CREATE FUNCTION identity_user_memberships(p_user_id uuid)
RETURNS TABLE (org_id uuid, role text, joined_at timestamptz, org_name text, suspended boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT m.org_id, m.role, m.created_at, o.name, o.suspended_at IS NOT NULL
    FROM memberships m JOIN organizations o ON o.id = m.org_id
    WHERE m.user_id = p_user_id ORDER BY m.created_at, m.org_id
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION identity_api_key_by_prefix(p_prefix text)
RETURNS TABLE (id uuid, org_id uuid, role text, secret_hash bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT k.id, k.org_id, k.role, k.secret_hash FROM api_keys k
    WHERE k.prefix = p_prefix AND k.revoked_at IS NULL
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION identity_invitation_by_token(p_token_hash bytea)
RETURNS TABLE (id uuid, org_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT i.id, i.org_id FROM invitations i
    WHERE i.token_hash = p_token_hash AND i.accepted_at IS NULL AND i.expires_at > now()
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION identity_invitation_by_token(bytea);
DROP FUNCTION identity_api_key_by_prefix(text);
DROP FUNCTION identity_user_memberships(uuid);
DROP TABLE audit_log;
DROP TABLE api_keys;
DROP TABLE invitations;
DROP TABLE memberships;
DROP TABLE totp_recovery_codes;
DROP TABLE email_tokens;
DROP TABLE refresh_tokens;
DROP TABLE organizations;
DROP TABLE users;
