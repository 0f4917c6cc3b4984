-- +goose Up
-- The audit log records the request an action came from and, for support
-- access, the user a platform admin acted for.
ALTER TABLE audit_log
    ADD COLUMN acting_for_user_id uuid,
    ADD COLUMN request_id text NOT NULL DEFAULT '';

-- A user's memberships are read on every login, refresh, switch and GET /me.
-- As a SECURITY DEFINER SQL function it cannot be inlined and is planned
-- again on every call (a third of the cost of GET /me); PL/pgSQL keeps its
-- plan for the session. Same signature, same rows.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION identity_user_memberships(p_user_id uuid)
RETURNS TABLE (org_id uuid, role text, joined_at timestamptz, org_name text, suspended boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT m.org_id, m.role, m.created_at, o.name, o.suspended_at IS NOT NULL
    FROM memberships m JOIN organizations o ON o.id = m.org_id
    WHERE m.user_id = p_user_id ORDER BY m.created_at, m.org_id;
END
$$;
-- +goose StatementEnd

-- GET /me is the hottest authenticated read: the user's memberships are kept
-- on the user's row, rebuilt by triggers in the transaction that changes a
-- membership or an organization's name or suspension, so /me reads one row
-- by primary key and is never stale. The triggers run as the owner
-- (SECURITY DEFINER): a tenant transaction sees only its own organization's
-- memberships, and the summary lists all of them.
ALTER TABLE users ADD COLUMN memberships jsonb NOT NULL DEFAULT '[]'::jsonb;

-- +goose StatementBegin
CREATE FUNCTION identity_refresh_memberships(p_user_id uuid)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE users SET memberships = COALESCE((
        SELECT jsonb_agg(jsonb_build_object('org_id', m.org_id, 'role', m.role, 'joined_at', m.created_at,
                   'org_name', o.name, 'suspended', o.suspended_at IS NOT NULL) ORDER BY m.created_at, m.org_id)
        FROM memberships m JOIN organizations o ON o.id = m.org_id
        WHERE m.user_id = p_user_id), '[]'::jsonb)
    WHERE id = p_user_id;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION identity_memberships_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM identity_refresh_memberships(NEW.user_id);
    END IF;
    IF TG_OP = 'DELETE' OR OLD.user_id <> NEW.user_id THEN
        PERFORM identity_refresh_memberships(OLD.user_id);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION identity_organization_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM identity_refresh_memberships(m.user_id) FROM memberships m WHERE m.org_id = NEW.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER memberships_summary AFTER INSERT OR DELETE OR UPDATE OF org_id, user_id, role ON memberships
    FOR EACH ROW EXECUTE FUNCTION identity_memberships_changed();
CREATE TRIGGER organizations_summary AFTER UPDATE OF name, suspended_at ON organizations
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.suspended_at IS DISTINCT FROM NEW.suspended_at)
    EXECUTE FUNCTION identity_organization_changed();

-- Only the triggers call these (as the owner); nobody needs to execute them.
REVOKE EXECUTE ON FUNCTION identity_refresh_memberships(uuid), identity_memberships_changed(),
    identity_organization_changed() FROM PUBLIC;

SELECT identity_refresh_memberships(id) FROM users;

-- +goose Down
DROP TRIGGER organizations_summary ON organizations;
DROP TRIGGER memberships_summary ON memberships;
DROP FUNCTION identity_organization_changed();
DROP FUNCTION identity_memberships_changed();
DROP FUNCTION identity_refresh_memberships(uuid);
ALTER TABLE users DROP COLUMN memberships;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION identity_user_memberships(p_user_id uuid)
RETURNS TABLE (org_id uuid, role text, joined_at timestamptz, org_name text, suspended boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT m.org_id, m.role, m.created_at, o.name, o.suspended_at IS NOT NULL
    FROM memberships m JOIN organizations o ON o.id = m.org_id
    WHERE m.user_id = p_user_id ORDER BY m.created_at, m.org_id
$$;
-- +goose StatementEnd
ALTER TABLE audit_log
    DROP COLUMN request_id,
    DROP COLUMN acting_for_user_id;
