-- +goose Up
-- The relay claims pending rows fewest attempts first, then oldest. A row
-- put back (its enqueue failed, or no replica acknowledged its task under
-- REDIS_MIN_REPLICA_ACKS) goes behind rows not tried yet, so a batch that
-- keeps failing cannot hold every newer row back: while replicas are
-- missing, new rows are still enqueued (their tasks run) and only wait to be
-- marked. In steady state every pending row has 0 attempts and the order is
-- the old one, oldest first.
CREATE INDEX outbox_pending_attempts_idx ON outbox (attempts, created_at) WHERE dispatched_at IS NULL;

-- +goose Down
DROP INDEX outbox_pending_attempts_idx;
