-- 0016_replayable_index.sql - the recipients index for replay by domain
-- covers only the statuses a replay can select (issue #3 item 7).
--
-- recipients_domain_status_idx (domain, status) served one query: bulk
-- replay (db/replay.c), which selects failed, bounced or deferred
-- recipients, optionally of one domain.  Yet every recipient accepted
-- added an entry to it, and so did every later status change (those
-- updates are never HOT: status is in the claim's partial index).  Keeping
-- only the replayable statuses takes one index entry off every accepted
-- recipient and off most of each delivery's updates; the replay's plans
-- use it as before (its status list is a constant subset of the
-- predicate).
DROP INDEX IF EXISTS recipients_domain_status_idx;
CREATE INDEX recipients_replayable_idx ON recipients (domain, status)
    WHERE status IN ('failed', 'bounced', 'deferred');
