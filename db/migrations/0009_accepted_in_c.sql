-- 0009_accepted_in_c.sql - the 202 body is built by the daemon (issue #3
-- item 7): mf_api_accepted() ran once per message inside the group commit
-- and was its most expensive statement.  The stored response of an
-- idempotent request becomes the exact bytes that were sent (text), so a
-- replay answers byte for byte what the first request got.
ALTER TABLE idempotency_keys ALTER COLUMN response TYPE text USING response::text;
DROP FUNCTION IF EXISTS mf_api_accepted(messages); -- 0002 no longer creates it
