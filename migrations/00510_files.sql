-- +goose Up
-- Files: objects a client uploads straight to S3 with a presigned PUT and
-- attaches to a resource. The row is the truth about a file; its object
-- lives at orgs/{org_id}/files/{id} (never a client-supplied path), its
-- thumbnail beside it. The filename is metadata only.
CREATE TABLE files (
    org_id        uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id            uuid        NOT NULL,
    resource_id   uuid        NOT NULL,
    filename      text        NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    -- What the client declared; both are bound into the presigned PUT.
    content_type  text        NOT NULL,
    size          bigint      NOT NULL CHECK (size > 0),
    -- pending: waiting for the upload or for file:process; ready: checked
    -- and counted against the storage limit; rejected: refused, the
    -- objects deleted, the reason kept for the client.
    status        text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'rejected')),
    reject_reason text        NOT NULL DEFAULT '',
    -- What file:process found in the object's bytes.
    sha256        text        CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    detected_type text,
    stored_size   bigint,
    has_thumbnail boolean     NOT NULL DEFAULT false,
    created_by_user_id    uuid,
    created_by_api_key_id uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- When the client called complete (file:process was enqueued).
    completed_at  timestamptz,
    PRIMARY KEY (org_id, id),
    -- A resource's files go with it: its purge removes them first (the
    -- files service releases their storage and deletes their objects), so
    -- this key only refuses a purge that forgot them.
    FOREIGN KEY (org_id, resource_id) REFERENCES resources (org_id, id),
    CHECK (status <> 'ready' OR (sha256 IS NOT NULL AND detected_type IS NOT NULL AND stored_size IS NOT NULL))
);

-- A resource's files, newest first, paged by keyset; also what a resource
-- purge finds its files by.
CREATE INDEX files_resource ON files (org_id, resource_id, created_at, id);
-- files:cleanup-pending finds each organization's old pending files.
CREATE INDEX files_pending ON files (org_id, created_at) WHERE status = 'pending';

ALTER TABLE files ENABLE ROW LEVEL SECURITY;
ALTER TABLE files FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON files
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- +goose Down
DROP TABLE files;
