-- +goose Up
-- A write sent as one message (tenant.WriteOnce) decides nothing between
-- its statements: it is sent with what the API assumes (the caller may
-- write, the organization's plan is the one last read, the reservation is
-- within the limit), and each assumption is checked by a statement that
-- calls keel_assume. When one no longer holds, keel_assume raises SQLSTATE
-- KL409, the message's implicit transaction rolls back whole, and the API
-- runs the write again as a transaction that reads and decides step by step
-- (and answers the exact error). It only raises: the decision is the
-- caller's, written in SQL beside the statements it guards.
-- +goose StatementBegin
CREATE FUNCTION keel_assume(ok boolean, what text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'assumption no longer holds: %', what USING ERRCODE = 'KL409';
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION keel_assume(boolean, text);
