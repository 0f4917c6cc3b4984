-- +goose Up
-- The transactional outbox: a change that must start a job writes a row here
-- in its own transaction; the worker's relay enqueues it to Asynq with the
-- row's id as the task ID, so a second relay of the same row is refused.
CREATE TABLE outbox (
    id            uuid PRIMARY KEY,
    task_type     text        NOT NULL,
    payload       bytea       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    queue         text        NOT NULL DEFAULT 'default',
    max_retry     integer     NOT NULL DEFAULT 25,
    timeout_ms    bigint      NOT NULL DEFAULT 0,
    process_at    timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
-- The relay only ever scans what is left to send. Dispatched rows have no
-- index on purpose: every mark would pay for it, and only the daily purge
-- reads them.
CREATE INDEX outbox_pending_idx ON outbox (created_at) WHERE dispatched_at IS NULL;

-- Records which emails were handed to SMTP, by task ID, so a re-run of an
-- email:send task does not mail twice.
CREATE TABLE sent_emails (
    task_id    text PRIMARY KEY,
    recipient  text        NOT NULL,
    template   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE sent_emails;
DROP TABLE outbox;
