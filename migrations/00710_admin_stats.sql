-- +goose Up
-- Business stats (GET /admin/stats, issue 11): what each subscription
-- charges, its monthly recurring revenue (MRR) contribution, when it ended,
-- and the history of every MRR change, so the stats are computed from local
-- data without calling Stripe.

-- The price facts are copied from the subscription's first item by the
-- billing code that applies a Stripe snapshot (events and reconciliation):
-- the price's unit amount, currency and recurring interval, the item's
-- quantity (the existing quantity column), and the subscription's discount
-- (one coupon: percent_off or amount_off, per invoice), and when a
-- subscription in a final state ended (Stripe's ended_at). Like every
-- column billing copies from the newest snapshot, they end the same
-- whatever order Stripe's events arrive in. mrr is kept by the trigger
-- below from those facts, whoever writes the row.
ALTER TABLE subscriptions
    ADD COLUMN price_unit_amount     bigint,
    ADD COLUMN price_currency        text,
    ADD COLUMN price_interval        text,
    ADD COLUMN price_interval_count  integer,
    ADD COLUMN discount_percent_off  numeric,
    ADD COLUMN discount_amount_off   bigint,
    -- The organization's MRR contribution in price_currency's smallest
    -- unit: billing_mrr of the facts above.
    ADD COLUMN mrr                   bigint      NOT NULL DEFAULT 0,
    -- Set only while the subscription is final (canceled, expired).
    ADD COLUMN ended_at              timestamptz;

-- billing_mrr is one subscription's monthly recurring revenue, in the
-- smallest currency unit: zero unless Keel enforces it as paid (active or
-- past_due) under a Stripe subscription whose price is known; otherwise the
-- invoice amount (unit amount x quantity, less percent_off %, less
-- amount_off, never below zero) spread over a month (a yearly price / 12,
-- weekly x 52 / 12, daily x 365 / 12, divided by the interval count),
-- rounded half away from zero.
-- +goose StatementBegin
CREATE FUNCTION billing_mrr(p_status text, p_subscription_id text, p_unit_amount bigint, p_quantity integer,
    p_interval text, p_interval_count integer, p_percent_off numeric, p_amount_off bigint)
RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_status IN ('active', 'past_due') AND p_subscription_id IS NOT NULL AND p_unit_amount IS NOT NULL
            AND p_interval IN ('day', 'week', 'month', 'year') THEN
            round(greatest(0::numeric,
                p_unit_amount::numeric * coalesce(p_quantity, 1) * (100 - coalesce(p_percent_off, 0)) / 100
                - coalesce(p_amount_off, 0))
                * CASE p_interval WHEN 'day' THEN 365 WHEN 'week' THEN 52 WHEN 'month' THEN 12 ELSE 1 END
                / (12 * greatest(coalesce(p_interval_count, 1), 1)))::bigint
        ELSE 0
    END
$$;
-- +goose StatementEnd

-- subscription_mrr_history is append-only: one row each time an
-- organization's MRR contribution (or its currency) changes, written in the
-- transaction that changed it, dated with the row's updated_at (which
-- every billing write sets to billing's clock): when Keel learned it, so
-- unlike the subscriptions row it records the order events arrived in. An
-- organization's MRR at an instant T is the mrr of its latest row at or
-- before T (none: zero).
CREATE TABLE subscription_mrr_history (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id   uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL,
    mrr      bigint      NOT NULL,
    currency text        NOT NULL
);
CREATE INDEX subscription_mrr_history_org_at ON subscription_mrr_history (org_id, at DESC, id DESC);

ALTER TABLE subscription_mrr_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscription_mrr_history FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subscription_mrr_history
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
-- The trigger function below runs as the owner: it records every change,
-- whichever transaction (tenant set or not) made it.
CREATE POLICY definer_insert ON subscription_mrr_history FOR INSERT TO CURRENT_USER WITH CHECK (true);

-- mrr, before each write, from the price facts.
-- +goose StatementBegin
CREATE FUNCTION billing_subscription_mrr()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.mrr := billing_mrr(NEW.status, NEW.stripe_subscription_id, NEW.price_unit_amount, NEW.quantity,
        NEW.price_interval, NEW.price_interval_count, NEW.discount_percent_off, NEW.discount_amount_off);
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- The history row, after a write that changed the contribution (or the
-- currency of a non-zero one).
-- +goose StatementBegin
CREATE FUNCTION billing_subscription_mrr_history()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.mrr = 0 THEN
            RETURN NULL;
        END IF;
    ELSIF NEW.mrr = OLD.mrr AND (NEW.mrr = 0 OR coalesce(NEW.price_currency, '') = coalesce(OLD.price_currency, '')) THEN
        RETURN NULL;
    END IF;
    INSERT INTO subscription_mrr_history (org_id, at, mrr, currency)
    VALUES (NEW.org_id, NEW.updated_at, NEW.mrr, coalesce(NEW.price_currency, ''));
    RETURN NULL;
END
$$;
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION billing_subscription_mrr_history() FROM PUBLIC;

CREATE TRIGGER subscriptions_mrr BEFORE INSERT OR UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION billing_subscription_mrr();
CREATE TRIGGER subscriptions_mrr_history AFTER INSERT OR UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION billing_subscription_mrr_history();

-- Churn counts ended subscriptions by the month they ended in.
CREATE INDEX subscriptions_ended_at ON subscriptions (ended_at) WHERE ended_at IS NOT NULL;

-- +goose Down
DROP INDEX subscriptions_ended_at;
DROP TRIGGER subscriptions_mrr_history ON subscriptions;
DROP TRIGGER subscriptions_mrr ON subscriptions;
DROP FUNCTION billing_subscription_mrr_history();
DROP FUNCTION billing_subscription_mrr();
DROP TABLE subscription_mrr_history;
DROP FUNCTION billing_mrr(text, text, bigint, integer, text, integer, numeric, bigint);
ALTER TABLE subscriptions
    DROP COLUMN ended_at,
    DROP COLUMN mrr,
    DROP COLUMN discount_amount_off,
    DROP COLUMN discount_percent_off,
    DROP COLUMN price_interval_count,
    DROP COLUMN price_interval,
    DROP COLUMN price_currency,
    DROP COLUMN price_unit_amount;
