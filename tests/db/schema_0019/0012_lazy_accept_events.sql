-- 0012_lazy_accept_events.sql - the events written when a message is
-- accepted carry no stored payload (issue #3 item 7).
--
-- Building the jsonb payload of every message.queued / message.suppressed
-- event inside the group commit was 13-23% of what PostgreSQL can write of
-- our rows (tests/bench/schema_ceiling.sql variants, docs/benchmarks.md).
-- Everything such a payload says is fixed at accept time and still in the
-- database: the recipient's address, the message's id, tags and metadata
-- (never updated), and the status, which follows from the event type and
-- send_at (the committer's rule: suppressed, else scheduled when send_at is
-- after the accept time, else queued); attempt 0, no SMTP reply, no bounce.
-- mf_event_doc(e) is what every reader uses: the stored payload, or that
-- same document built on read - equal, as jsonb, to what
-- mf_event_payload() would have stored (tested).  Message retention
-- stores the payload before it deletes a message (db/retention.c).
ALTER TABLE events ALTER COLUMN payload DROP NOT NULL;

CREATE FUNCTION mf_event_doc(e events) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(e.payload, (
        SELECT jsonb_build_object(
            'id', 'evt_' || e.id,
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

-- The timeline of GET /v1/messages/{id} reads events through mf_event_doc().
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
                                   'id', 'evt_' || e.id, 'type', e.type, 'created_at', mf_ts(e.created_at),
                                   'recipient', d.doc->'data'->>'recipient',
                                   'data', d.doc->'data') ORDER BY e.id)
                           FROM events e CROSS JOIN LATERAL (SELECT mf_event_doc(e) AS doc) d
                          WHERE e.message_id = m.id), '[]'::jsonb))
           ELSE '{}'::jsonb END
$$;
