-- 0008_ingest_speed.sql - cheaper ingest (issue #3 item 7).
--
-- The webhook fan-out of 0005 ran a PL/pgSQL function and an INSERT once
-- per event row; the send path inserts one event per recipient of a whole
-- group in one statement, so the fan-out now runs once per statement over
-- the transition table of the inserted events (PostgreSQL manual, CREATE
-- TRIGGER, "REFERENCING NEW TABLE").  Same rows as before, in event order,
-- in the same transaction; one NOTIFY when any delivery was queued.
DROP TRIGGER events_webhook_fanout ON events;
DROP FUNCTION mf_webhook_fanout();

CREATE FUNCTION mf_webhook_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Nothing to do (the common case) costs one probe of webhooks.
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE enabled) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (webhook_id, event_id, recipient_id)
    SELECT w.id, n.id, n.recipient_id
      FROM new_events n
      JOIN webhooks w ON w.enabled AND (cardinality(w.events) = 0 OR n.type = ANY (w.events))
     ORDER BY n.id, w.id;
    IF FOUND THEN
        PERFORM pg_notify('mailferry_webhooks', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_webhook_fanout AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION mf_webhook_fanout();
