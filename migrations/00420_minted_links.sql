-- +goose Up
-- Links are minted by the worker when it sends them (issue 8, secrets at
-- rest). The API creates an email_tokens or invitations row without a token;
-- the email task carries the row's ID, never a link; the worker, in the
-- transaction that records the send (sent_emails), draws the token, stores
-- its SHA-256 here and mails the link. Until then token_hash is NULL, which
-- no lookup (token_hash = $1, identity_invitation_by_token) ever matches.
ALTER TABLE email_tokens ALTER COLUMN token_hash DROP NOT NULL;
ALTER TABLE invitations ALTER COLUMN token_hash DROP NOT NULL;

-- +goose Down
-- A row not minted yet gets a 16-byte placeholder: no SHA-256 (32 bytes)
-- equals it, so it stays unusable. invitations forces Row Level Security on
-- its owner too; the owner lifts that for the one statement.
UPDATE email_tokens SET token_hash = uuid_send(gen_random_uuid()) WHERE token_hash IS NULL;
ALTER TABLE invitations NO FORCE ROW LEVEL SECURITY;
UPDATE invitations SET token_hash = uuid_send(gen_random_uuid()) WHERE token_hash IS NULL;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
ALTER TABLE email_tokens ALTER COLUMN token_hash SET NOT NULL;
ALTER TABLE invitations ALTER COLUMN token_hash SET NOT NULL;
