-- 0002_api.sql - the send API's JSON representations, defined once.
--
-- The 202 answer of POST /v1/messages, the stored idempotent replay, the
-- items of GET /v1/messages and GET /v1/messages/{id} are all built here,
-- so a message looks the same wherever the API shows it (INTERFACE.md
-- "HTTP API", "Recipient detail").

-- RFC 3339 UTC with milliseconds, the API's one timestamp format.
CREATE FUNCTION mf_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- The 202 body: {"id","status","created_at","recipients":[{"email","kind","status"}]}.
CREATE FUNCTION mf_api_accepted(m messages) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', m.id,
        'status', m.status,
        'created_at', mf_ts(m.created_at),
        'recipients', coalesce((SELECT jsonb_agg(jsonb_build_object('email', r.email, 'kind', r.kind,
                                                                   'status', r.status) ORDER BY r.position)
                                  FROM recipients r WHERE r.message_id = m.id), '[]'::jsonb))
$$;

-- INTERFACE.md "Recipient detail".
CREATE FUNCTION mf_api_recipient(r recipients) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'email', r.email,
        'kind', r.kind,
        'status', r.status,
        'attempts', r.attempts,
        'next_attempt_at', CASE WHEN r.status IN ('queued', 'scheduled', 'deferred')
                                THEN mf_ts(r.next_attempt_at) END,
        'last_response', CASE WHEN r.last_code IS NULL AND r.last_text IS NULL THEN NULL ELSE
                         jsonb_build_object('code', r.last_code, 'enhanced_code', r.last_enhanced,
                                            'text', r.last_text, 'mx', r.last_mx) END,
        'tls', CASE WHEN r.tls_version IS NULL THEN NULL ELSE
               jsonb_build_object('version', r.tls_version, 'cipher', r.tls_cipher,
                                  'verified', r.tls_verified) END,
        'updated_at', mf_ts(r.updated_at))
$$;

-- A message as GET /v1/messages lists it; with_events adds the timeline
-- (GET /v1/messages/{id}).
CREATE FUNCTION mf_api_message(m messages, with_events boolean) RETURNS jsonb
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
                                   'recipient', e.payload->'data'->>'recipient',
                                   'data', e.payload->'data') ORDER BY e.id)
                           FROM events e WHERE e.message_id = m.id), '[]'::jsonb))
           ELSE '{}'::jsonb END
$$;
