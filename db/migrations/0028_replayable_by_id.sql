-- 0028_replayable_by_id.sql - the replay index in the order a bulk
-- replay walks it (db/replay.c).
--
-- A bulk replay takes its recipients in batches, in id order, after a
-- cursor (r.id > last ORDER BY r.id LIMIT n).  On (domain, status), from
-- 0016, each batch read every replayable recipient of the domain still
-- left and sorted them to find the first n: a replay of 100,000
-- recipients read ~5 million index entries in 100 batches, the first
-- batch alone 100,000 (226 ms, with an external sort).  On (domain, id)
-- the batch is a range of the index in order: n entries (plus those of
-- statuses not asked for).  The predicate is 0016's: only replayable
-- statuses are indexed, so accepting and delivering cost what they did.
DROP INDEX IF EXISTS recipients_replayable_idx;
CREATE INDEX recipients_replayable_idx ON recipients (domain, id)
    WHERE status IN ('failed', 'bounced', 'deferred');
