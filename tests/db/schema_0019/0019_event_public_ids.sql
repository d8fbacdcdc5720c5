-- 0019_event_public_ids.sql - every event gets a globally unique public
-- id (issue "Promises kept", point 4).
--
-- The id an event is known by outside the database - the payload's "id",
-- so the webhook-id header, GET /v1/events, the message timeline, the
-- webhook delivery log, `mailferry status` - was 'evt_' || events.id, a
-- per-database sequence: every install, and every restored backup, began
-- again at evt_1, and a consumer deduplicating on webhook-id (as the
-- README tells it to) dropped real events.  It is now
-- mf_event_id(public_id): 'evt_' and a UUIDv7 (RFC 9562 section 5.7: 48 bits
-- of Unix milliseconds, 74 random bits), made by the database in the
-- statement that inserts the event - the column default, or mf_uuidv7()
-- in the same statement where a writer stores the payload with it - so
-- no writer takes another round trip.  events.id stays the internal key
-- (deliveries, per-recipient order) and (txid, id) the feed's
-- commit-order cursor, which the API hands out as an opaque string.
--
-- No unique index: uniqueness comes from the random bits (as for message
-- ids), nothing looks an event up by its public id, and every index entry
-- is paid on the accept path.

-- A UUIDv7 for the time p_at: 48 bits of milliseconds, version 7, 12
-- random bits; variant 10, 62 random bits.  The random bits come from
-- random(), the backend's xoshiro128** generator, which PostgreSQL seeds
-- from pg_strong_random() in each backend (no session of mailferry calls
-- setseed()): gen_random_uuid() takes them from OpenSSL per call and cost
-- five times as much (measured: ~20 against ~4 us a row on the busy test
-- machine) on the accept path, which makes one id per recipient.  An
-- event id needs to be unique, not secret.  An SQL function, so that it
-- is inlined.
CREATE FUNCTION mf_uuidv7(p_at timestamptz DEFAULT clock_timestamp()) RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT (lpad(to_hex((floor(date_part('epoch', p_at) * 1000)::bigint << 16) | 28672
                        | floor(random() * 4096)::bigint), 16, '0')
            || to_hex(x'8000000000000000'::bit(64)::bigint
                      | (floor(random() * 2147483648)::bigint << 31)
                      | floor(random() * 2147483648)::bigint))::uuid
$$;

-- The one definition of an event's public id.
CREATE FUNCTION mf_event_id(p_public_id uuid) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'evt_' || p_public_id::text
$$;

-- Existing events get ids of their own time, and their stored documents
-- say so.  Deliveries still pending for them are sent with the new id.
ALTER TABLE events ADD COLUMN public_id uuid;
UPDATE events e
   SET public_id = v.pid,
       payload = CASE WHEN e.payload IS NULL THEN NULL
                      ELSE e.payload || jsonb_build_object('id', mf_event_id(v.pid)) END
  FROM (SELECT id, mf_uuidv7(created_at) AS pid FROM events) v
 WHERE v.id = e.id;
ALTER TABLE events ALTER COLUMN public_id SET DEFAULT mf_uuidv7(),
                   ALTER COLUMN public_id SET NOT NULL;

-- 0001's definition with the public id (callers pass it: it must be known
-- before the row that stores the payload is inserted).
DROP FUNCTION mf_event_payload(bigint, text, recipients, messages, jsonb);
CREATE FUNCTION mf_event_payload(p_public_id uuid, p_type text, r recipients, m messages,
                                 p_extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', mf_event_id(p_public_id),
        'type', p_type,
        'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'data', jsonb_build_object(
            'message_id', m.id,
            'recipient', r.email,
            'status', r.status,
            'attempt', r.attempts,
            'smtp', CASE WHEN r.last_code IS NULL AND r.last_text IS NULL THEN NULL ELSE
                    jsonb_build_object('code', r.last_code, 'enhanced_code', r.last_enhanced,
                                       'text', r.last_text, 'mx', r.last_mx) END,
            'bounce', CASE WHEN r.bounce_type IS NULL THEN NULL ELSE
                    jsonb_build_object('type', r.bounce_type, 'category', r.bounce_category) END,
            'tags', to_jsonb(m.tags),
            'metadata', m.metadata) || p_extra)
$$;

-- Records one event for a recipient, in the caller's transaction, and
-- returns its internal id.  p_extra is merged into "data".
CREATE OR REPLACE FUNCTION mf_record_event(p_recipient bigint, p_type text, p_extra jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint := nextval('events_id_seq');
    v_public uuid := mf_uuidv7();
    r recipients;
    m messages;
BEGIN
    SELECT * INTO r FROM recipients WHERE id = p_recipient;
    SELECT * INTO m FROM messages WHERE id = r.message_id;
    INSERT INTO events (id, public_id, message_id, recipient_id, type, payload)
    VALUES (v_id, v_public, r.message_id, r.id, p_type, mf_event_payload(v_public, p_type, r, m, p_extra));
    RETURN v_id;
END
$$;

-- 0005's definition with the public id.
CREATE OR REPLACE FUNCTION mf_webhook_disable(p_webhook bigint, p_reason text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_public uuid := mf_uuidv7();
    w webhooks;
BEGIN
    UPDATE webhooks SET enabled = false, disabled_reason = p_reason, updated_at = now()
     WHERE id = p_webhook AND enabled
    RETURNING * INTO w;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO events (public_id, type, payload)
    VALUES (v_public, 'webhook.disabled', jsonb_build_object(
        'id', mf_event_id(v_public),
        'type', 'webhook.disabled',
        'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'data', jsonb_build_object('webhook_id', w.public_id, 'url', w.url, 'reason', p_reason)));
END
$$;

-- 0012's definition with the public id.
CREATE OR REPLACE FUNCTION mf_event_doc(e events) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(e.payload, (
        SELECT jsonb_build_object(
            'id', mf_event_id(e.public_id),
            'type', e.type,
            'timestamp', to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'data', jsonb_build_object(
                'message_id', m.id,
                'recipient', r.email,
                'status', CASE WHEN e.type = 'message.suppressed' THEN 'suppressed'
                               WHEN m.send_at > e.created_at THEN 'scheduled'
                               ELSE 'queued' END,
                'attempt', 0,
                'smtp', NULL,
                'bounce', NULL,
                'tags', to_jsonb(m.tags),
                'metadata', m.metadata))
          FROM recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.id = e.recipient_id))
$$;

-- 0012's definition with the public id in the timeline.
CREATE OR REPLACE FUNCTION mf_api_message(m messages, with_events boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', m.id,
        'status', m.status,
        'created_at', mf_ts(m.created_at),
        'updated_at', mf_ts(m.updated_at),
        'send_at', mf_ts(m.send_at),
        'from', m.from_header,
        'subject', m.subject,
        'message_id', '<' || m.message_id_hdr || '>',
        'tags', to_jsonb(m.tags),
        'metadata', m.metadata,
        'size', m.size,
        'recipients', coalesce((SELECT jsonb_agg(mf_api_recipient(r) ORDER BY r.position)
                                  FROM recipients r WHERE r.message_id = m.id), '[]'::jsonb))
        || CASE WHEN with_events THEN jsonb_build_object('events',
               coalesce((SELECT jsonb_agg(jsonb_build_object(
                                   'id', mf_event_id(e.public_id), 'type', e.type,
                                   'created_at', mf_ts(e.created_at),
                                   'recipient', d.doc->'data'->>'recipient',
                                   'data', d.doc->'data') ORDER BY e.id)
                           FROM events e CROSS JOIN LATERAL (SELECT mf_event_doc(e) AS doc) d
                          WHERE e.message_id = m.id), '[]'::jsonb))
           ELSE '{}'::jsonb END
$$;
