-- +goose Up
-- Billing: each organization's subscription state, its invoices, the
-- Stripe webhook inbox, and the notices (emails) billing sends once.

-- subscriptions holds one row per organization: its plan and billing status
-- as Keel enforces them. Stripe's subscription is the source of truth for a
-- paying organization; this row is its local copy, written only by the
-- worker applying Stripe events (in order: stripe_event_at guards it) and
-- by the trial and dunning jobs.
CREATE TABLE subscriptions (
    org_id                 uuid        PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    -- NULL: the catalog's fallback plan (organizations from before billing).
    plan_id                text,
    status                 text        NOT NULL DEFAULT 'free'
        CHECK (status IN ('trialing', 'active', 'past_due', 'read_only', 'canceled', 'free')),
    billing_interval       text        CHECK (billing_interval IN ('month', 'year')),
    trial_end              timestamptz,
    current_period_end     timestamptz,
    cancel_at_period_end   boolean     NOT NULL DEFAULT false,
    stripe_customer_id     text        UNIQUE,
    stripe_subscription_id text,
    -- Stripe's own status of that subscription (active, past_due, unpaid, ...).
    stripe_status          text,
    -- The subscription object's creation: a newer subscription replaces an
    -- older one, never the reverse.
    stripe_subscription_created timestamptz,
    -- The Stripe event whose subscription state this row holds: an event
    -- older than it (created, then id) never overwrites it.
    stripe_event_at        timestamptz,
    stripe_event_id        text,
    quantity               integer,
    -- Dunning: when the first unpaid invoice failed, and when the grace
    -- period ends (then the organization is read-only).
    past_due_since         timestamptz,
    grace_until            timestamptz,
    version                bigint      NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- Organizations from before billing are on the fallback plan, unbilled.
INSERT INTO subscriptions (org_id, status) SELECT id, 'free' FROM organizations;

ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subscriptions
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY definer_lookup ON subscriptions FOR SELECT TO CURRENT_USER USING (true);


-- invoices are the organization's Stripe invoices as events reported them.
-- An invoice's status only moves forward (open -> paid, void,
-- uncollectible), so a late payment_failed never reopens a paid invoice.
CREATE TABLE invoices (
    org_id             uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    stripe_invoice_id  text        NOT NULL,
    stripe_subscription_id text,
    number             text        NOT NULL DEFAULT '',
    status             text        NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    currency           text        NOT NULL DEFAULT '',
    amount_due         bigint      NOT NULL DEFAULT 0,
    amount_paid        bigint      NOT NULL DEFAULT 0,
    hosted_invoice_url text        NOT NULL DEFAULT '',
    invoice_pdf        text        NOT NULL DEFAULT '',
    period_start       timestamptz,
    period_end         timestamptz,
    -- The invoice's creation at Stripe: lists sort on it.
    stripe_created     timestamptz NOT NULL,
    attempt_count      integer     NOT NULL DEFAULT 0,
    first_failed_at    timestamptz,
    paid_at            timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, stripe_invoice_id)
);
CREATE INDEX invoices_listed ON invoices (org_id, stripe_created, stripe_invoice_id);

ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invoices
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- billing_notices records each billing email once, by its business key
-- (trial-ending:<trial end>, dunning:<invoice>:<day>, ...): the row and the
-- email's outbox row commit together, so a notice is queued exactly once
-- however often its event or job runs.
CREATE TABLE billing_notices (
    org_id     uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key        text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);

ALTER TABLE billing_notices ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing_notices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON billing_notices
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- billing_customers maps a Stripe customer to its organization. A webhook
-- names a customer, not an organization, so the worker asks which
-- organization it is before the tenant is known: through
-- billing_org_of_customer, as identity's lookups do, never by reading the
-- table without a tenant.
CREATE TABLE billing_customers (
    stripe_customer_id text        PRIMARY KEY,
    org_id             uuid        NOT NULL UNIQUE REFERENCES organizations (id) ON DELETE CASCADE,
    created_at         timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE billing_customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing_customers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON billing_customers
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY definer_lookup ON billing_customers FOR SELECT TO CURRENT_USER USING (true);

-- +goose StatementBegin
CREATE FUNCTION billing_org_of_customer(p_customer_id text)
RETURNS TABLE (org_id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT c.org_id FROM billing_customers c WHERE c.stripe_customer_id = p_customer_id;
END
$$;
-- +goose StatementEnd

-- Reconciliation visits every customer.
-- +goose StatementBegin
CREATE FUNCTION billing_customers_all()
RETURNS TABLE (stripe_customer_id text, org_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT c.stripe_customer_id, c.org_id FROM billing_customers c ORDER BY c.org_id
$$;
-- +goose StatementEnd

-- stripe_events is the webhook inbox: every verified event, stored by its
-- Stripe ID (a duplicate delivery inserts nothing) in the transaction that
-- writes its stripe:event outbox row. Platform data: the organization is
-- found when the event is applied, and what it did is recorded in that
-- organization's own rows (audit_log, subscriptions, invoices).
CREATE TABLE stripe_events (
    id          text        PRIMARY KEY,
    type        text        NOT NULL,
    api_version text        NOT NULL DEFAULT '',
    livemode    boolean     NOT NULL DEFAULT false,
    -- The event's creation at Stripe: the order events are compared in.
    created     timestamptz NOT NULL,
    payload     jsonb       NOT NULL,
    status      text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'ignored')),
    -- Why an event was ignored (unknown type, unknown customer, stale).
    note        text        NOT NULL DEFAULT '',
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text        NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL DEFAULT now(),
    applied_at  timestamptz
);
CREATE INDEX stripe_events_received ON stripe_events (received_at);
CREATE INDEX stripe_events_pending ON stripe_events (received_at) WHERE status = 'pending';

-- Platform jobs (trial expiry, dunning, reconciliation) find the
-- organizations they have work for without reading tenant rows: this
-- returns only IDs, for the statuses asked.
-- +goose StatementBegin
CREATE FUNCTION billing_orgs_with_status(p_statuses text[])
RETURNS TABLE (org_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT s.org_id FROM subscriptions s WHERE s.status = ANY (p_statuses) ORDER BY s.org_id
$$;
-- +goose StatementEnd

-- The plan limits are read on every counted write and every rate-limited
-- request, inside a tenant transaction or outside one (the rate limiter):
-- this returns one organization's plan and status wherever it is asked,
-- from the snapshot of the transaction that asks.
-- +goose StatementBegin
CREATE FUNCTION billing_plan_of(p_org_id uuid)
RETURNS TABLE (plan_id text, status text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT s.plan_id, s.status FROM subscriptions s WHERE s.org_id = p_org_id;
END
$$;
-- +goose StatementEnd

-- Read-only: an organization whose payment is overdue past its grace
-- period keeps reading but cannot create or change its data. The check runs
-- in the writing transaction, whoever writes (a user, an API key, a job),
-- from the subscription row that transaction sees, so a payment restores
-- writes at once and a lapse stops them at once. Deleting stays possible
-- (a resource's soft delete too): an organization may always shrink.
-- SQLSTATE KL402 is mapped to 402 payment_required by platform/postgres.
-- The row is read FOR SHARE: a write that passed the check holds the lock
-- until it commits, so the switch to read_only (an UPDATE of that row)
-- waits for it, and a write arriving after the switch's UPDATE waits for
-- the switch and then reads read_only. Without the lock a write could pass
-- the check, then commit after the switch did. Share locks do not block
-- one another, so writes of one organization still run in parallel. An
-- application-role write always has its tenant set (RLS's WITH CHECK), so
-- the locking read sees the row; a maintenance write without a tenant
-- falls back to the plain read, as the definer may.
-- +goose StatementBegin
CREATE FUNCTION billing_assert_writable()
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
REVOKE EXECUTE ON FUNCTION billing_assert_writable() FROM PUBLIC;

CREATE TRIGGER resources_writable BEFORE INSERT OR UPDATE ON resources
    FOR EACH ROW EXECUTE FUNCTION billing_assert_writable();
CREATE TRIGGER files_writable BEFORE INSERT OR UPDATE ON files
    FOR EACH ROW EXECUTE FUNCTION billing_assert_writable();
CREATE TRIGGER invitations_writable BEFORE INSERT ON invitations
    FOR EACH ROW EXECUTE FUNCTION billing_assert_writable();

-- +goose Down
DROP TRIGGER invitations_writable ON invitations;
DROP TRIGGER files_writable ON files;
DROP TRIGGER resources_writable ON resources;
DROP FUNCTION billing_assert_writable();
DROP FUNCTION billing_customers_all();
DROP FUNCTION billing_org_of_customer(text);
DROP FUNCTION billing_plan_of(uuid);
DROP FUNCTION billing_orgs_with_status(text[]);
DROP TABLE stripe_events;
DROP TABLE billing_customers;
DROP TABLE billing_notices;
DROP TABLE invoices;
DROP TABLE subscriptions;
