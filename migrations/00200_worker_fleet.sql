-- +goose Up
-- Platform tables of the worker fleet. None of them is a tenant table: they
-- are read by operators (keelctl, later the admin area) across every tenant,
-- never by a tenant's request. The organization a dead task belonged to is
-- therefore kept as `tenant_org_id`, not `org_id`, so the tenant-table
-- catalog check (every `org_id` table has RLS) does not mistake it for one.

-- dead_tasks mirrors every task whose last attempt failed (or that skipped
-- retries), so it outlives Asynq's archive trimming (10,000 per queue, 90
-- days). One row per task ID; a task that dies again updates its row.
CREATE TABLE dead_tasks (
    id             uuid PRIMARY KEY,
    task_id        text        NOT NULL UNIQUE,
    task_type      text        NOT NULL,
    queue          text        NOT NULL,
    payload        bytea       NOT NULL,
    headers        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    tenant_org_id  uuid,
    last_error     text        NOT NULL,
    retried        integer     NOT NULL DEFAULT 0,
    max_retry      integer     NOT NULL DEFAULT 0,
    died_at        timestamptz NOT NULL DEFAULT now(),
    replayed_at    timestamptz,
    replay_task_id uuid,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_tasks_died_idx ON dead_tasks (died_at DESC);

-- job_runs records what each periodic job did (backup verification, purges).
CREATE TABLE job_runs (
    id          uuid PRIMARY KEY,
    job         text        NOT NULL,
    task_id     text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('running', 'ok', 'failed')),
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_runs_job_started_idx ON job_runs (job, started_at DESC);
CREATE INDEX job_runs_started_idx ON job_runs (started_at DESC);

-- canary_runs is written by ops:canary, the end-to-end probe of the fleet
-- (outbox → relay → Redis → worker → PostgreSQL): one row per task ID, with
-- how many times the handler ran it.
CREATE TABLE canary_runs (
    task_id      text PRIMARY KEY,
    runs         integer     NOT NULL DEFAULT 1,
    first_run_at timestamptz NOT NULL DEFAULT now(),
    last_run_at  timestamptz NOT NULL DEFAULT now()
);

-- Task types may be unique (Asynq refuses a second task with the same type,
-- payload and queue while the first is pending); the relay needs the TTL.
ALTER TABLE outbox ADD COLUMN unique_ttl_ms bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE outbox DROP COLUMN unique_ttl_ms;
DROP TABLE canary_runs;
DROP TABLE job_runs;
DROP TABLE dead_tasks;
