-- 0013_lean_accept.sql - fewer per-row checks and index entries on the
-- accept path (issue #3 item 7).
--
-- The group committer's PostgreSQL backend is the serial part of ingest.
-- A profile of it at 32 clients (docs/benchmarks.md) spent 12-16% of its
-- time in the two foreign keys' per-row checks (each an SPI query with its
-- own executor start and a FOR KEY SHARE row lock): recipients ->
-- messages and messages -> api_keys.  Measured with them dropped: 60 -> 52
-- us of database CPU per accepted message.
--
-- What the keys guarded is guarded where the rows are written instead:
--  * recipients are inserted only by the committer's accept statement,
--    from the same arrays and in the same transaction as their message
--    (db/accept.c), and deleted only with it (message retention,
--    db/retention.c, which now deletes them explicitly; tested: no
--    recipient outlives its message);
--  * API keys are never deleted (keys revoke sets revoked_at), so a
--    message's api_key_id always names a key.
--
-- Two indexes go for the same reason:
--  * messages_msgid_idx: a bounce is matched by its Message-ID, which
--    mailferry always makes "<message id>@<helo_name>"; the lookup now
--    goes through the primary key (db/bounces.c) and checks the header.
--  * events_created_idx becomes a BRIN index: events are appended in
--    created_at order, so block ranges are enough for retention's
--    "older than" scans, at almost no cost per insert.
ALTER TABLE recipients DROP CONSTRAINT IF EXISTS recipients_message_id_fkey;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_api_key_id_fkey;
DROP INDEX IF EXISTS messages_msgid_idx;
DROP INDEX IF EXISTS events_created_idx;
CREATE INDEX events_created_brin ON events USING brin (created_at);
