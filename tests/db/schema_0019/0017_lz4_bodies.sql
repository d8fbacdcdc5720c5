-- 0017_lz4_bodies.sql - accepted messages' bytes compressed with lz4
-- (issue #3 item 7).
--
-- A composed message of ~2 KB or more (headers, a text and an HTML part:
-- a common transactional email) makes the messages row larger than
-- TOAST_TUPLE_THRESHOLD (2,032 bytes), so PostgreSQL compresses it while
-- the group committer inserts it.  pglz, the default, cost the
-- committer's backend ~15 us per 2.2 KB message (72 -> 56 us of server
-- CPU per message at 32 clients with lz4 instead); lz4 also decompresses
-- faster when delivery reads the body.  Only values written from now on
-- are affected.  A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE messages ALTER COLUMN body SET COMPRESSION lz4;
    ALTER TABLE messages ALTER COLUMN request SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available in this server; messages keep pglz';
END
$$;
