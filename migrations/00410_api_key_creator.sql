-- +goose Up
-- An API key acts only while the user who created it could still create it:
-- a member of the key's organization holding at least the key's role. The
-- lookup that resolves a presented key therefore returns the creator's
-- current role (NULL when the creator left, or their account is gone and
-- created_by was set NULL) and the key's optional expiry; the API refuses
-- the key when either fails, in the same single statement as before.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;

-- PL/pgSQL keeps the statement's plan for the session; a SECURITY DEFINER
-- SQL function is planned again on every call (see 00300_kernel.sql), and
-- this one runs on every request made with an API key.
DROP FUNCTION identity_api_key_by_prefix(text);
-- +goose StatementBegin
CREATE FUNCTION identity_api_key_by_prefix(p_prefix text)
RETURNS TABLE (id uuid, org_id uuid, role text, secret_hash bytea, expires_at timestamptz, creator_role text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT k.id, k.org_id, k.role, k.secret_hash, k.expires_at, m.role
    FROM api_keys k LEFT JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.created_by
    WHERE k.prefix = p_prefix AND k.revoked_at IS NULL;
END
$$;
-- +goose StatementEnd
-- keelctl migrate up (EnsureAppRole) grants EXECUTE to the application role
-- and nobody else; until then no one but the owner may call it.
REVOKE EXECUTE ON FUNCTION identity_api_key_by_prefix(text) FROM PUBLIC;

-- +goose Down
DROP FUNCTION identity_api_key_by_prefix(text);
-- +goose StatementBegin
CREATE FUNCTION identity_api_key_by_prefix(p_prefix text)
RETURNS TABLE (id uuid, org_id uuid, role text, secret_hash bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT k.id, k.org_id, k.role, k.secret_hash FROM api_keys k
    WHERE k.prefix = p_prefix AND k.revoked_at IS NULL
$$;
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION identity_api_key_by_prefix(text) FROM PUBLIC;
ALTER TABLE api_keys DROP COLUMN expires_at;
