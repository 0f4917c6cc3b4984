-- +goose Up
-- email:send no longer holds a transaction open over SMTP (issue 12). It
-- claims the send (a row with sent_at NULL) and mints any link in one short
-- transaction, talks SMTP with no transaction open, then sets sent_at. A row
-- whose sent_at is NULL is a send whose outcome is unknown (SMTP failed, or
-- the worker died mid-exchange): the task's next run sends again, with a
-- freshly minted link. attempts counts the runs that claimed it.
ALTER TABLE sent_emails ADD COLUMN sent_at timestamptz, ADD COLUMN attempts integer NOT NULL DEFAULT 1;
-- Every earlier row committed only after SMTP accepted its message.
UPDATE sent_emails SET sent_at = created_at;

-- +goose Down
ALTER TABLE sent_emails DROP COLUMN attempts, DROP COLUMN sent_at;
