-- 0008_ingest_speed.sql - cheaper ingest (issue #3 item 7).
--
-- The webhook fan-out of 0005 ran a PL/pgSQL function and an INSERT once
-- per event row; the send path inserts one event per recipient of a whole
-- group in one statement, so the fan-out now runs once per statement over
-- the transition table of the inserted events (PostgreSQL manual, CREATE
-- TRIGGER, "REFERENCING NEW TABLE").  Same rows as before, in event order,
-- in the same transaction; one NOTIFY when any delivery was queued.  The
-- function's body is db/functions.sql.
DROP TRIGGER events_webhook_fanout ON events;

CREATE TRIGGER events_webhook_fanout AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION mf_webhook_fanout();
