-- 0014_cheaper_accept.sql - two costs of every accepted message removed
-- (issue #3 item 7).
--
-- mf_ts() is declared STABLE, so that the planner inlines it (declared
-- IMMUTABLE it was not: 4% of the group committer's backend); that is now
-- its definition in db/functions.sql.

-- messages.request, the request as accepted (attachments without their
-- bytes), is kept for people reading the database, never parsed by
-- mailferry: stored as text it costs no JSON parse per accepted message
-- (jsonb_in was 4% of the committer's backend).  Read it with
-- request::jsonb.  (This rewrites the messages table once.)
ALTER TABLE messages ALTER COLUMN request TYPE text USING request::text;
