-- +goose Up
-- Resources: the tenant-owned records a product built on Keel is about, and
-- the usage counters that plan limits are enforced against.

CREATE TABLE resources (
    org_id      uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id          uuid        NOT NULL,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('draft', 'active', 'archived')),
    attributes  jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    version     bigint      NOT NULL DEFAULT 1,
    created_by_user_id    uuid,
    created_by_api_key_id uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Soft delete: restorable until the retention job purges the row.
    deleted_at  timestamptz,
    PRIMARY KEY (org_id, id)
);

-- One index per sort, each (org_id, key, id) over live rows only, so every
-- keyset page is an index range scan whatever the table's size.
CREATE INDEX resources_created ON resources (org_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX resources_updated ON resources (org_id, updated_at, id) WHERE deleted_at IS NULL;
CREATE INDEX resources_name ON resources (org_id, name COLLATE "C", id) WHERE deleted_at IS NULL;
-- No trigram index for the name search (q): under Row Level Security the
-- planner uses a condition as an index condition only when its functions
-- are leakproof, and lower() and LIKE are not, so such an index would cost
-- every write and serve no read. q filters the tenant's live rows in the
-- order of the sort's index (docs/benchmarks.md has the figures).
-- resources:purge finds, one organization at a time, rows deleted long ago.
CREATE INDEX resources_deleted ON resources (org_id, deleted_at) WHERE deleted_at IS NOT NULL;

ALTER TABLE resources ENABLE ROW LEVEL SECURITY;
ALTER TABLE resources FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON resources
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- usage_counters holds what an organization uses of each counted plan
-- metric. A write that adds usage increments the counter in its own
-- transaction with a conditional UPDATE, whose row lock serializes
-- concurrent writers: the check and the write cannot race.
CREATE TABLE usage_counters (
    org_id     uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    metric     text        NOT NULL CHECK (metric IN ('resources', 'storage_bytes', 'seats')),
    value      bigint      NOT NULL DEFAULT 0 CHECK (value >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, metric)
);

ALTER TABLE usage_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_counters
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- +goose Down
DROP TABLE usage_counters;
DROP TABLE resources;
