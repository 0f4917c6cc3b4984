-- +goose Up
-- usage_deltas holds changes to usage_counters not yet added to them. A
-- write on a plan without a limit for the metric, and every release, adds a
-- row here instead of updating the counter, so an organization's writes do
-- not queue on one row lock (a counter row updated by every create caps one
-- tenant's creates at about a thousand per second on two cores; see
-- docs/benchmarks.md). Usage is the counter plus its deltas; a write that
-- checks a limit first folds the deltas into the counter. The writers of
-- deltas hold a shared transaction-scoped advisory lock on the counter
-- (plandb.lockKey) and a folder an exclusive one, so a limit check waits
-- for every delta in flight and none is left out of it.
CREATE TABLE usage_deltas (
    org_id     uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    metric     text        NOT NULL CHECK (metric IN ('resources', 'storage_bytes')),
    delta      bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_deltas_org_metric_idx ON usage_deltas (org_id, metric);

ALTER TABLE usage_deltas ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_deltas FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_deltas
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- +goose Down
-- Fold what is pending into the counters first, so going back loses no
-- usage. Both tables force Row Level Security on their owner too; the owner
-- lifts it for the one statement.
ALTER TABLE usage_deltas NO FORCE ROW LEVEL SECURITY;
ALTER TABLE usage_counters NO FORCE ROW LEVEL SECURITY;
INSERT INTO usage_counters (org_id, metric, value)
SELECT org_id, metric, GREATEST(sum(delta), 0) FROM usage_deltas GROUP BY org_id, metric
ON CONFLICT (org_id, metric) DO UPDATE SET updated_at = now(), value = GREATEST(usage_counters.value
    + (SELECT sum(d.delta) FROM usage_deltas d WHERE d.org_id = EXCLUDED.org_id AND d.metric = EXCLUDED.metric), 0);
ALTER TABLE usage_counters FORCE ROW LEVEL SECURITY;
DROP TABLE usage_deltas;
