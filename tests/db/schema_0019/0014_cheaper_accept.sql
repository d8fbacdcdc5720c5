-- 0014_cheaper_accept.sql - two costs of every accepted message removed
-- (issue #3 item 7).
--
-- mf_ts() is declared STABLE, so that the planner inlines it.  It formats
-- a timestamp the API's way.  Declared IMMUTABLE while its body calls to_char(timestamp, text), which is STABLE, it was never
-- inlined: PostgreSQL inlines an SQL function only when its body is no
-- more volatile than its declaration.  Every call then went through
-- fmgr_sql, which parses, analyses and plans the body again for each
-- execution of the calling statement - 4% of the group committer's
-- backend for the one call in its accept statement, and once per
-- timestamp in every message and event document that readers build.
-- STABLE is also the truth: to_char's output depends on settings.
ALTER FUNCTION mf_ts(timestamptz) STABLE;

-- messages.request, the request as accepted (attachments without their
-- bytes), is kept for people reading the database, never parsed by
-- mailferry: stored as text it costs no JSON parse per accepted message
-- (jsonb_in was 4% of the committer's backend).  Read it with
-- request::jsonb.  (This rewrites the messages table once.)
ALTER TABLE messages ALTER COLUMN request TYPE text USING request::text;
