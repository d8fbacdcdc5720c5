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

-- Wakes the schedulers when claimable rows appear.  A placeholder, because the trigger needs its
-- function to exist: the body is db/functions.sql, which "mailferry
-- migrate" applies after the migrations (allowed by tests/lint.sh).
CREATE FUNCTION mf_notify_queue() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER recipients_notify_insert AFTER INSERT ON recipients
    FOR EACH STATEMENT EXECUTE FUNCTION mf_notify_queue();
