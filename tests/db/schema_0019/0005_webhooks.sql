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

CREATE FUNCTION mf_webhook_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event_id, recipient_id)
    SELECT w.id, NEW.id, NEW.recipient_id
      FROM webhooks w
     WHERE w.enabled AND (cardinality(w.events) = 0 OR NEW.type = ANY (w.events));
    IF FOUND THEN
        PERFORM pg_notify('mailferry_webhooks', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_webhook_fanout AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION mf_webhook_fanout();

-- When an endpoint is disabled (by mailferry or through the API), its
-- pending deliveries are canceled: the claim never scans past rows it
-- cannot send, and nothing piles up for an endpoint that is gone.  They stay
-- in the delivery log, a manual retry revives one, and GET /v1/events has
-- every event.  Deliveries in flight finish normally.
CREATE FUNCTION mf_webhook_cancel_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE webhook_deliveries SET status = 'canceled', last_error = 'the endpoint was disabled',
           updated_at = now()
     WHERE webhook_id = NEW.id AND status = 'pending';
    RETURN NULL;
END
$$;
CREATE TRIGGER webhooks_cancel_on_disable AFTER UPDATE OF enabled ON webhooks
    FOR EACH ROW WHEN (OLD.enabled AND NOT NEW.enabled) EXECUTE FUNCTION mf_webhook_cancel_pending();

-- Disables an endpoint and records a webhook.disabled event (fanned out to
-- the other endpoints subscribed to it).  No-op when already disabled.
CREATE FUNCTION mf_webhook_disable(p_webhook bigint, p_reason text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    w webhooks;
BEGIN
    UPDATE webhooks SET enabled = false, disabled_reason = p_reason, updated_at = now()
     WHERE id = p_webhook AND enabled
    RETURNING * INTO w;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_id := nextval('events_id_seq');
    INSERT INTO events (id, type, payload)
    VALUES (v_id, 'webhook.disabled', jsonb_build_object(
        'id', 'evt_' || v_id,
        'type', 'webhook.disabled',
        'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'data', jsonb_build_object('webhook_id', w.public_id, 'url', w.url, 'reason', p_reason)));
END
$$;

-- Records the outcome of one attempt, only while the caller still holds the
-- lease (a late writer after a reclaim changes nothing).  p_status is
-- 'succeeded', 'pending' (retry after p_delay seconds) or 'failed'.
-- p_gone: the endpoint answered 410 and is disabled.  An endpoint failing
-- without a success for p_disable_after seconds is disabled too.
-- Returns false when the lease was lost.
CREATE FUNCTION mf_webhook_finish(p_delivery bigint, p_owner text, p_status text, p_http integer,
                                  p_error text, p_delay double precision, p_gone boolean,
                                  p_disable_after double precision)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_webhook bigint;
    v_since timestamptz;
BEGIN
    UPDATE webhook_deliveries
       SET status = p_status, attempts = attempts + 1, last_http_status = p_http,
           last_error = p_error, last_attempt_at = now(),
           next_attempt_at = CASE WHEN p_status = 'pending'
                                  THEN now() + make_interval(secs => p_delay) ELSE now() END,
           lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
     WHERE id = p_delivery AND status = 'sending' AND lease_owner = p_owner
    RETURNING webhook_id INTO v_webhook;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_status = 'succeeded' THEN
        UPDATE webhooks SET failing_since = NULL WHERE id = v_webhook AND failing_since IS NOT NULL;
        RETURN true;
    END IF;
    UPDATE webhooks SET failing_since = coalesce(failing_since, now())
     WHERE id = v_webhook RETURNING failing_since INTO v_since;
    IF p_gone THEN
        PERFORM mf_webhook_disable(v_webhook, 'the endpoint answered 410 Gone');
    ELSIF v_since < now() - make_interval(secs => p_disable_after) THEN
        PERFORM mf_webhook_disable(v_webhook, 'failing continuously since ' ||
            to_char(v_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
    END IF;
    RETURN true;
END
$$;
