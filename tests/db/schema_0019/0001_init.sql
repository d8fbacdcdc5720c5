-- 0001_init.sql - mailferry's first schema.
--
-- Designed for millions of rows: every index serves a query the daemon runs
-- often (the claim, the status lookup, the list filters, the outbox claims).
-- Claimable rows are indexed with partial indexes so that the claim never
-- scans past delivered mail (BENCHMARKS.md: 10x slower otherwise).

CREATE TABLE settings (
    name        text PRIMARY KEY,
    value       bytea NOT NULL
);

CREATE TABLE api_keys (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    public_id    text NOT NULL UNIQUE,          -- the non-secret part of the key
    salt         bytea NOT NULL,
    hash         bytea NOT NULL,                -- SHA-256(salt || secret)
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- One row per accepted message.  id is a UUIDv7 made by the API (time
-- ordered, so keyset pagination on id follows creation order).
CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    api_key_id      bigint REFERENCES api_keys(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    send_at         timestamptz,
    status          text NOT NULL DEFAULT 'queued',   -- summary of its recipients
    mail_from       text NOT NULL,                    -- envelope sender (addr-spec)
    from_header     text NOT NULL,
    subject         text NOT NULL DEFAULT '',
    message_id_hdr  text NOT NULL,                    -- Message-ID without <>
    tags            text[] NOT NULL DEFAULT '{}',
    metadata        jsonb NOT NULL DEFAULT '{}',
    size            integer NOT NULL,
    body            bytea,                            -- composed, signed RFC 5322 message; NULL after retention
    request         jsonb,                            -- the request as accepted (no attachment bytes)
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_created_idx ON messages (created_at, id);
CREATE INDEX messages_status_idx ON messages (status, id);
CREATE INDEX messages_tags_idx ON messages USING gin (tags);
CREATE INDEX messages_msgid_idx ON messages (message_id_hdr);

CREATE TABLE recipients (
    id                bigserial PRIMARY KEY,
    message_id        uuid NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    position          smallint NOT NULL,
    email             text NOT NULL,
    domain            text NOT NULL,            -- lower case
    kind              text NOT NULL CHECK (kind IN ('to', 'cc', 'bcc')),
    status            text NOT NULL CHECK (status IN ('queued', 'scheduled', 'sending', 'deferred',
                          'delivered', 'bounced', 'failed', 'suppressed', 'canceled')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    first_attempt_at  timestamptz,
    lease_owner       text,
    lease_expires_at  timestamptz,
    last_code         integer,
    last_enhanced     text,
    last_text         text,
    last_mx           text,
    tls_version       text,
    tls_cipher        text,
    tls_verified      boolean,
    bounce_type       text,
    bounce_category   text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, position)
);
-- The claim: only claimable rows are in this index.
CREATE INDEX recipients_due_idx ON recipients (next_attempt_at)
    WHERE status IN ('queued', 'scheduled', 'deferred');
-- The lease reaper.
CREATE INDEX recipients_lease_idx ON recipients (lease_expires_at) WHERE status = 'sending';
-- List filter by recipient, replay by domain.
CREATE INDEX recipients_email_idx ON recipients (lower(email), message_id);
CREATE INDEX recipients_domain_status_idx ON recipients (domain, status);

-- Every status change writes an event in the same transaction.  txid lets
-- the pull feed return events in commit order (only events whose
-- transaction is older than every transaction still running are visible).
CREATE TABLE events (
    id            bigserial PRIMARY KEY,
    txid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    message_id    uuid,
    recipient_id  bigint,
    type          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    payload       jsonb NOT NULL
);
CREATE INDEX events_message_idx ON events (message_id, id);
CREATE INDEX events_feed_idx ON events (txid, id);
CREATE INDEX events_created_idx ON events (created_at);

CREATE TABLE suppressions (
    email          text PRIMARY KEY,            -- lower case
    reason         text NOT NULL CHECK (reason IN ('bounce', 'manual', 'complaint', 'unsubscribe')),
    message_id     uuid,
    diagnostic     text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suppressions_reason_idx ON suppressions (reason, email);

CREATE TABLE idempotency_keys (
    api_key_id     bigint NOT NULL REFERENCES api_keys(id),
    key            text NOT NULL,
    request_hash   bytea NOT NULL,
    status_code    integer,                     -- NULL while in flight
    response       jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE webhooks (
    id              bigserial PRIMARY KEY,
    public_id       text NOT NULL UNIQUE,
    url             text NOT NULL,
    events          text[] NOT NULL DEFAULT '{}',   -- empty: all
    description     text NOT NULL DEFAULT '',
    enabled         boolean NOT NULL DEFAULT true,
    secret          text NOT NULL,
    old_secret      text,
    old_secret_expires_at timestamptz,
    failing_since   timestamptz,
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       bigint NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         bigint NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'sending', 'succeeded', 'failed', 'canceled')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    last_http_status integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_lease_idx ON webhook_deliveries (lease_expires_at)
    WHERE status = 'sending';
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);

CREATE TABLE bounces_raw (
    id            bigserial PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    source        text NOT NULL,                -- 'smtp' or 'api'
    mail_from     text,
    rcpt_to       text,
    raw           bytea NOT NULL,
    processed_at  timestamptz,
    outcome       text
);
CREATE INDEX bounces_raw_unprocessed_idx ON bounces_raw (id) WHERE processed_at IS NULL;

-- The message's status summarises its recipients (INTERFACE.md):
-- the common status if they share one, else 'partial' once all are
-- terminal, else 'sending'.
CREATE FUNCTION mf_message_status(p_message uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN count(DISTINCT status) = 1 THEN min(status)
        WHEN bool_and(status IN ('delivered', 'bounced', 'failed', 'suppressed', 'canceled')) THEN 'partial'
        ELSE 'sending'
    END
    FROM recipients WHERE message_id = p_message
$$;

-- Call after changing recipients of a message, in the same transaction.
CREATE FUNCTION mf_refresh_message_status(p_message uuid) RETURNS void
LANGUAGE sql AS $$
    UPDATE messages SET status = s.st, updated_at = now()
      FROM (SELECT mf_message_status(p_message) AS st) s
     WHERE id = p_message AND status IS DISTINCT FROM s.st
$$;

-- The one definition of an event payload (INTERFACE.md "Events and
-- webhooks"), built from the recipient and message rows as they are now.
CREATE FUNCTION mf_event_payload(p_event_id bigint, p_type text, r recipients, m messages,
                                 p_extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', 'evt_' || p_event_id,
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

-- Records one event for a recipient, in the caller's transaction.
-- p_extra is merged into "data" (e.g. {"requested_by": "..."}).
CREATE FUNCTION mf_record_event(p_recipient bigint, p_type text, p_extra jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint := nextval('events_id_seq');
    r recipients;
    m messages;
BEGIN
    SELECT * INTO r FROM recipients WHERE id = p_recipient;
    SELECT * INTO m FROM messages WHERE id = r.message_id;
    INSERT INTO events (id, message_id, recipient_id, type, payload)
    VALUES (v_id, r.message_id, r.id, p_type, mf_event_payload(v_id, p_type, r, m, p_extra));
    RETURN v_id;
END
$$;

-- Wake the schedulers (LISTEN mailferry_queue) when claimable rows appear.
CREATE FUNCTION mf_notify_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mailferry_queue', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER recipients_notify_insert AFTER INSERT ON recipients
    FOR EACH STATEMENT EXECUTE FUNCTION mf_notify_queue();
