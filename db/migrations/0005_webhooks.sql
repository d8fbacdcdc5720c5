-- 0005_webhooks.sql - the webhook outbox: fan-out, ordering, outcomes.
--
-- Every event row yields one webhook_deliveries row per enabled endpoint
-- subscribed to its type (an empty events array subscribes to all), inside
-- the transaction that wrote the event: an AFTER INSERT trigger does it, so
-- whoever records an event (send API, delivery, bounces, housekeeping) fans
-- out without knowing about webhooks, and no event can be committed without
-- its deliveries.  The trigger also wakes the dispatchers (LISTEN
-- mailferry_webhooks); NOTIFY is delivered at commit.

-- The recipient the event is about: the dispatcher does not send a later
-- event for a recipient while an earlier one for the same recipient is still
-- pending or being sent to the same endpoint (per-recipient ordering).
ALTER TABLE webhook_deliveries ADD COLUMN recipient_id bigint;
ALTER TABLE webhook_deliveries ADD COLUMN last_attempt_at timestamptz;
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (webhook_id, recipient_id, event_id)
    WHERE status IN ('pending', 'sending');

-- Queues webhook deliveries for new events.  A placeholder, because the trigger needs its
-- function to exist: the body is db/functions.sql, which "mailferry
-- migrate" applies after the migrations (allowed by tests/lint.sh).
CREATE FUNCTION mf_webhook_fanout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER events_webhook_fanout AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION mf_webhook_fanout();

-- Cancels the pending deliveries of a disabled endpoint.  A placeholder, because the trigger needs its
-- function to exist: the body is db/functions.sql, which "mailferry
-- migrate" applies after the migrations (allowed by tests/lint.sh).
CREATE FUNCTION mf_webhook_cancel_pending() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER webhooks_cancel_on_disable AFTER UPDATE OF enabled ON webhooks
    FOR EACH ROW WHEN (OLD.enabled AND NOT NEW.enabled) EXECUTE FUNCTION mf_webhook_cancel_pending();
