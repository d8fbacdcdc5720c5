-- 0021_bounce_wait.sql - a bounce for a recipient still being delivered
-- waits for the delivery's outcome.
--
-- A receiver that answered 250 to DATA has taken responsibility for the
-- message and reports a later failure by mail (RFC 5321 section 6.1), as
-- an RFC 3464 DSN with "Action: failed".  That DSN can reach the bounce
-- listener before the delivery worker's recorder has written the 250: the
-- recipient is still 'sending'.  Applied at once, the bounce made it
-- 'bounced' (final) and the late 'delivered' was dropped, so the timeline
-- lost message.delivered (queued, bounced instead of queued, delivered,
-- bounced).  The bounce processor now leaves such a row unprocessed and
-- notes here which recipient it waits for and until when; its claim skips
-- the row while that recipient is 'sending' and the time has not come
-- (bounce/bounces.c, db/bounces.c).  The wait is bounded (lease_time), so
-- a recipient stuck in 'sending' cannot hold a bounce forever.
--
-- No index: a waiting row is an unprocessed row, found through
-- bounces_raw_unprocessed_idx, and the recipient through its primary key.
ALTER TABLE bounces_raw
    ADD COLUMN wait_rcpt  bigint,       -- recipients.id found 'sending' when the bounce was last looked at
    ADD COLUMN wait_until timestamptz;  -- processed then even if that recipient is still 'sending'
