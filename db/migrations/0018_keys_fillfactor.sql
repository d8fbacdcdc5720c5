-- 0018_keys_fillfactor.sql - idempotency_keys back at the default
-- fillfactor (issue #3 item 7).
--
-- 0015 left half of each page free so that storing the 202 in the key row
-- just claimed was a HOT update.  Since the answer is no longer stored (a
-- replay builds it again, db/accept.c) key rows are written once, and
-- only the takeover of an expired key updates one: the free half only
-- made the table twice as large.  Pages written from now on are filled.
ALTER TABLE idempotency_keys RESET (fillfactor);
