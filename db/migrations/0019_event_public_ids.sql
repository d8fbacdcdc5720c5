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
-- is inlined.  Defined here as well as in db/functions.sql (its current
-- definition), because this migration's data step and column default
-- need it (allowed by tests/lint.sh).
CREATE FUNCTION mf_uuidv7(p_at timestamptz DEFAULT clock_timestamp()) RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT (lpad(to_hex((floor(date_part('epoch', p_at) * 1000)::bigint << 16) | 28672
                        | floor(random() * 4096)::bigint), 16, '0')
            || to_hex(x'8000000000000000'::bit(64)::bigint
                      | (floor(random() * 2147483648)::bigint << 31)
                      | floor(random() * 2147483648)::bigint))::uuid
$$;

-- Existing events get ids of their own time, and their stored documents
-- say so (the id as mf_event_id() in db/functions.sql makes it).  Deliveries still pending for them are sent with the new id.
ALTER TABLE events ADD COLUMN public_id uuid;
UPDATE events e
   SET public_id = v.pid,
       payload = CASE WHEN e.payload IS NULL THEN NULL
                      ELSE e.payload || jsonb_build_object('id', 'evt_' || v.pid::text) END
  FROM (SELECT id, mf_uuidv7(created_at) AS pid FROM events) v
 WHERE v.id = e.id;
ALTER TABLE events ALTER COLUMN public_id SET DEFAULT mf_uuidv7(),
                   ALTER COLUMN public_id SET NOT NULL;

-- mf_event_id(), and mf_event_payload(), mf_record_event(),
-- mf_webhook_disable(), mf_event_doc() and mf_api_message() with the public
-- id, are defined in db/functions.sql; the old mf_event_payload(), which
-- took the internal id, goes.
DROP FUNCTION IF EXISTS mf_event_payload(bigint, text, recipients, messages, jsonb);
