-- +goose Up
-- Idempotency keys: the first response to an authenticated POST sent with an
-- Idempotency-Key header, kept 24 hours so a retry gets it again instead of
-- doing the work twice. A row is scoped to an organization and the
-- credential that sent it (a user's ID or an API key's ID), under the
-- tenant's Row Level Security. While the first request runs the row is a
-- lock (status NULL) that expires at locked_until, so a request cut by a
-- crash does not hold its key for the whole day.
CREATE TABLE idempotency_keys (
    org_id       uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    credential   uuid        NOT NULL,
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 of method, path, query and body: the same key with another
    -- request is refused.
    fingerprint  bytea       NOT NULL,
    lock_id      uuid        NOT NULL,
    locked_until timestamptz NOT NULL,
    -- The stored response; status is NULL while the first request runs.
    status       smallint,
    header       jsonb,
    body         bytea,
    -- The work was done but its response carried a secret, which is never
    -- stored: a replay answers 409 idempotency_replay_unavailable.
    unreplayable boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (org_id, credential, key)
);
-- tokens:purge deletes expired keys organization by organization.
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (org_id, expires_at);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- +goose Down
DROP TABLE idempotency_keys;
