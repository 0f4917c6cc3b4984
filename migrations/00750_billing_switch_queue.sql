-- +goose Up
-- billing_assert_writable reads the subscriptions row FOR SHARE, and the
-- switch to read-only waits for those share locks. Row share locks are not
-- queued: a write arriving while the switch waits still gets its share
-- lock, so with an organization's writes overlapping without pause (they
-- run in parallel since usage_deltas) the switch waited for seconds, and
-- longer under steady load, while new writes kept passing the check
-- (TestReadOnlyFlipRace). Before its share lock every write now takes a
-- shared advisory lock on the organization's billing, and whoever locks
-- the account to change it (billingdb.Store.Account with lock) takes it
-- exclusively first. Advisory locks queue: once the switch waits, later
-- writes wait behind it, and then read its status.
-- +goose StatementBegin
CREATE FUNCTION billing_lock(org uuid, exclusive boolean)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF exclusive THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('billing/' || org::text, 0));
    ELSE
        PERFORM pg_advisory_xact_lock_shared(hashtextextended('billing/' || org::text, 0));
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION billing_assert_writable()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    st text;
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'resources' THEN
        IF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
            RETURN NEW;
        END IF;
    END IF;
    PERFORM billing_lock(NEW.org_id, false);
    SELECT s.status INTO st FROM subscriptions s WHERE s.org_id = NEW.org_id FOR SHARE;
    IF NOT FOUND THEN
        SELECT s.status INTO st FROM subscriptions s WHERE s.org_id = NEW.org_id;
    END IF;
    IF st = 'read_only' THEN
        RAISE EXCEPTION 'organization % is read-only until its overdue invoice is paid', NEW.org_id
            USING ERRCODE = 'KL402';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION billing_assert_writable()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    st text;
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'resources' THEN
        IF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
            RETURN NEW;
        END IF;
    END IF;
    SELECT s.status INTO st FROM subscriptions s WHERE s.org_id = NEW.org_id FOR SHARE;
    IF NOT FOUND THEN
        SELECT s.status INTO st FROM subscriptions s WHERE s.org_id = NEW.org_id;
    END IF;
    IF st = 'read_only' THEN
        RAISE EXCEPTION 'organization % is read-only until its overdue invoice is paid', NEW.org_id
            USING ERRCODE = 'KL402';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
DROP FUNCTION billing_lock(uuid, boolean);
