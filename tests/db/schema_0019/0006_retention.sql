-- 0006_retention.sql - index for the retention housekeeper (db/retention.c).
--
-- Bodies are cleared oldest first; only messages that still have a body
-- are in this index, so a cleared row is never scanned again and the
-- retention query stays cheap however much history the table keeps.
CREATE INDEX messages_body_kept_idx ON messages (created_at) WHERE body IS NOT NULL;
