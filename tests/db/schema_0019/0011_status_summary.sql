-- 0011_status_summary.sql - the message status rule as inlinable pieces
-- (issue #3 item 7; measured on the delivery path).
--
-- mf_message_status() aggregates one message's recipients; called once per
-- message from the recorder's set-based UPDATE it cost ~60 us a message
-- (an SQL function with its own executor per call; 1.2 s of 3.7 s of
-- database time draining 20k messages).  The rule itself now lives in two
-- IMMUTABLE expression functions, which the planner inlines, so that the
-- recorder can apply it to a GROUP BY over many messages in one query and
-- mf_message_status() stays the same rule for single messages.
CREATE FUNCTION mf_status_terminal(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT s IN ('delivered', 'bounced', 'failed', 'suppressed', 'canceled')
$$;

-- INTERFACE.md "Statuses": the common status if the recipients share one,
-- else 'partial' once all are terminal, else 'sending'.
CREATE FUNCTION mf_status_summary(n_distinct bigint, a_status text, all_terminal boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n_distinct = 1 THEN a_status
                WHEN all_terminal THEN 'partial'
                ELSE 'sending' END
$$;

CREATE OR REPLACE FUNCTION mf_message_status(p_message uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT mf_status_summary(count(DISTINCT status), min(status), bool_and(mf_status_terminal(status)))
      FROM recipients WHERE message_id = p_message
$$;
