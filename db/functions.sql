-- functions.sql - the one current definition of every SQL function of
-- mailferry's schema.
--
-- Migrations (db/migrations/) change the schema only; "mailferry migrate"
-- applies this file after them on every run, in one transaction under the
-- migrate advisory lock (db/migrate.c), and records its SHA-256 in
-- schema_functions, which /readyz compares with the binary's.  So a change
-- to a function is a change to this file, never a new migration.
--
-- Rules for this file: idempotent (CREATE OR REPLACE); when a signature or
-- return type changes, DROP FUNCTION IF EXISTS the old one first, here;
-- functions that others call (SQL-language bodies are checked at creation)
-- come first.  Migrations whose own DDL or data step needs a function at
-- their point in history keep a definition of it (tests/lint.sh lists them).

-- Signatures replaced over time, gone from every migrated database already;
-- dropped again for a database restored from an old dump.
DROP FUNCTION IF EXISTS mf_api_accepted(messages);
DROP FUNCTION IF EXISTS mf_event_payload(bigint, text, recipients, messages, jsonb);

-- RFC 3339 UTC with milliseconds, the API's one timestamp format.
-- STABLE, so that the planner inlines it (migration 0014): PostgreSQL
-- inlines an SQL function only when its body is no more volatile than its
-- declaration, and to_char(timestamp, text) is STABLE - its output depends
-- on settings.  Declared IMMUTABLE it went through fmgr_sql on every call
-- (4% of the group committer's backend).
CREATE OR REPLACE FUNCTION mf_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- A UUIDv7 for the time p_at (RFC 9562 section 5.7): 48 bits of
-- milliseconds, version 7, 12 random bits; variant 10, 62 random bits.  The
-- random bits come from random(), the backend's xoshiro128** generator,
-- which PostgreSQL seeds from pg_strong_random() in each backend (no
-- session of mailferry calls setseed()): gen_random_uuid() takes them from
-- OpenSSL per call and cost five times as much (measured: ~20 against ~4 us
-- a row on the busy test machine) on the accept path, which makes one id
-- per recipient.  An event id needs to be unique, not secret.  An SQL
-- function, so that it is inlined.  (Also defined by migration 0019, whose
-- column default and data step need it.)
CREATE OR REPLACE FUNCTION mf_uuidv7(p_at timestamptz DEFAULT clock_timestamp()) RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT (lpad(to_hex((floor(date_part('epoch', p_at) * 1000)::bigint << 16) | 28672
                        | floor(random() * 4096)::bigint), 16, '0')
            || to_hex(x'8000000000000000'::bit(64)::bigint
                      | (floor(random() * 2147483648)::bigint << 31)
                      | floor(random() * 2147483648)::bigint))::uuid
$$;

-- The one definition of an event's public id (migration 0019).
CREATE OR REPLACE FUNCTION mf_event_id(p_public_id uuid) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'evt_' || p_public_id::text
$$;

-- Whether some session of this database holds the session-level advisory
-- lock pg_advisory_lock(k) (a delivery process's liveness, migration 0022
-- and queue/queue.h).  pg_locks shows a bigint key as classid (high 32
-- bits) and objid (low 32 bits) with objsubid 1, and shows every role's
-- locks to every role (pg_stat_activity hides backend_start of other
-- roles' sessions).  Expensive (pg_lock_status copies the lock table):
-- callers test it only for owners already suspected.
CREATE OR REPLACE FUNCTION mf_advisory_lock_held(k bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND l.classid::bigint = (k >> 32) & 4294967295
                      AND l.objid::bigint = k & 4294967295)
$$;

-- The message status rule as inlinable pieces: IMMUTABLE expression
-- functions, which the planner inlines, so that the recorder can apply the
-- rule to a GROUP BY over many messages in one query (a per-message call
-- cost ~60 us: migration 0011).  A recipient status that will not change
-- again without a replay.
CREATE OR REPLACE FUNCTION mf_status_terminal(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT s IN ('delivered', 'bounced', 'failed', 'suppressed', 'canceled')
$$;

-- INTERFACE.md "Statuses": the common status if the recipients share one,
-- else 'partial' once all are terminal, else 'sending'.
CREATE OR REPLACE FUNCTION mf_status_summary(n_distinct bigint, a_status text, all_terminal boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n_distinct = 1 THEN a_status
                WHEN all_terminal THEN 'partial'
                ELSE 'sending' END
$$;

-- The same rule for one message.
CREATE OR REPLACE FUNCTION mf_message_status(p_message uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT mf_status_summary(count(DISTINCT status), min(status), bool_and(mf_status_terminal(status)))
      FROM recipients WHERE message_id = p_message
$$;

-- Call after changing recipients of a message, in the same transaction.
CREATE OR REPLACE FUNCTION mf_refresh_message_status(p_message uuid) RETURNS void
LANGUAGE sql AS $$
    UPDATE messages SET status = s.st, updated_at = now()
      FROM (SELECT mf_message_status(p_message) AS st) s
     WHERE id = p_message AND status IS DISTINCT FROM s.st
$$;

-- The same for a set of messages in one UPDATE (the delivery recorder's
-- batches, replay's): the rule (mf_status_summary) applied to a GROUP BY
-- rather than a function call per message, the messages in id order so
-- that concurrent writers lock them alike (measured: a call per message
-- took 1.19 s for 20k messages, and 0.36 s against 0.10 s for a replay
-- batch of 1,000).
CREATE OR REPLACE FUNCTION mf_refresh_message_statuses(p_messages uuid[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE messages m SET status = s.st, updated_at = now()
      FROM (SELECT r.message_id AS id,
                   mf_status_summary(count(DISTINCT r.status), min(r.status),
                                     bool_and(mf_status_terminal(r.status))) AS st
              FROM recipients r WHERE r.message_id = ANY(p_messages)
             GROUP BY r.message_id ORDER BY r.message_id) s
     WHERE m.id = s.id AND m.status IS DISTINCT FROM s.st
$$;

-- The one definition of an event payload (INTERFACE.md "Events and
-- webhooks"), built from the recipient and message rows as they are now.
-- Callers pass the event's public id: it must be known before the row that
-- stores the payload is inserted.
CREATE OR REPLACE FUNCTION mf_event_payload(p_public_id uuid, p_type text, r recipients, m messages,
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
            'metadata', m.metadata)
            -- The TLS and MTA-STS policy of the attempt, when there was one.
            || CASE WHEN r.tls_version IS NULL AND r.mta_sts IS NULL THEN '{}'::jsonb ELSE
               jsonb_build_object('tls', jsonb_build_object(
                   'version', r.tls_version, 'cipher', r.tls_cipher, 'verified', r.tls_verified,
                   'mta_sts', r.mta_sts, 'mta_sts_failure', r.mta_sts_failure)) END
            || p_extra)
$$;

-- Records one event for a recipient, in the caller's transaction, and
-- returns its internal id.  p_extra is merged into "data" (e.g.
-- {"requested_by": "..."}).
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

-- An event's document: the stored payload, or - for the accept events,
-- stored without one (migration 0012: building it in the group commit was
-- 13-23% of what PostgreSQL can write of our rows) - the same document built
-- on read from what is fixed at accept: address, message id, tags, metadata,
-- and the status, which follows from the event type and send_at (the
-- committer's rule); attempt 0, no SMTP reply, no bounce.  Equal, as jsonb,
-- to what mf_event_payload() would have stored (tested).  Message retention
-- stores the payload before it deletes a message (db/retention.c).
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

-- INTERFACE.md "Recipient detail".
CREATE OR REPLACE FUNCTION mf_api_recipient(r recipients) RETURNS jsonb
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
        'tls', CASE WHEN r.tls_version IS NULL AND r.mta_sts IS NULL THEN NULL ELSE
               jsonb_build_object('version', r.tls_version, 'cipher', r.tls_cipher,
                                  'verified', r.tls_verified, 'mta_sts', r.mta_sts,
                                  'mta_sts_failure', r.mta_sts_failure) END,
        'updated_at', mf_ts(r.updated_at))
$$;

-- The API's representation of a message (GET /v1/messages/{id} with its
-- event timeline, the items of GET /v1/messages without), INTERFACE.md
-- "HTTP API", so that a message looks the same wherever the API shows it.
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
        'source', m.source,
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

-- Wakes the schedulers (LISTEN mailferry_queue) when claimable rows appear
-- (trigger recipients_notify_insert).  NOTIFY takes a database-wide lock at
-- pre-commit and keeps it until the commit record is flushed (PostgreSQL
-- manual, NOTIFY), so a session that notifies after its own commit (the
-- send API's committer) sets mailferry.defer_notify = on and the trigger
-- leaves it alone; every other writer (replay, tests, psql) still wakes the
-- schedulers from here.
CREATE OR REPLACE FUNCTION mf_notify_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mailferry.defer_notify', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('mailferry_queue', '');
    END IF;
    RETURN NULL;
END
$$;

-- The webhook fan-out (trigger events_webhook_fanout): once per statement
-- over the transition table of the inserted events (PostgreSQL manual,
-- CREATE TRIGGER, "REFERENCING NEW TABLE"), in event order, in the same
-- transaction; one NOTIFY when any delivery was queued.
CREATE OR REPLACE FUNCTION mf_webhook_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
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

-- When an endpoint is disabled (by mailferry or through the API), its
-- pending deliveries are canceled (trigger webhooks_cancel_on_disable): the
-- claim never scans past rows it cannot send, and nothing piles up for an
-- endpoint that is gone.  They stay in the delivery log, a manual retry
-- revives one, and GET /v1/events has every event.  Deliveries in flight
-- finish normally.
CREATE OR REPLACE FUNCTION mf_webhook_cancel_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE webhook_deliveries SET status = 'canceled', last_error = 'the endpoint was disabled',
           updated_at = now()
     WHERE webhook_id = NEW.id AND status = 'pending';
    RETURN NULL;
END
$$;

-- Disables an endpoint and records a webhook.disabled event (with its
-- public id) saying why.
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

-- Records the outcome of one attempt, only while the caller still holds the
-- lease (a late writer after a reclaim changes nothing).  p_status is
-- 'succeeded', 'pending' (retry after p_delay seconds) or 'failed'.
-- p_gone: the endpoint answered 410 and is disabled.  An endpoint failing
-- without a success for p_disable_after seconds is disabled too.
-- Returns false when the lease was lost.
CREATE OR REPLACE FUNCTION mf_webhook_finish(p_delivery bigint, p_owner text, p_status text, p_http integer,
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

-- Per-destination control (issue 17 point 3, queue/destination.h): the
-- rate in jobs per minute that destination_rate gives p_domain (p_rates is
-- {"gmail.com": 600, "*": 0}); 0 is none.
CREATE OR REPLACE FUNCTION mf_destination_rate(p_rates jsonb, p_domain text) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(coalesce((p_rates ->> p_domain)::double precision,
                             (p_rates ->> '*')::double precision, 0), 0)
$$;

-- A token bucket holds at most one second's worth of jobs, and at least
-- one job: a rate is a rate, not a burst allowance.
CREATE OR REPLACE FUNCTION mf_destination_bucket(p_rate double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(1, p_rate / 60)
$$;

-- How many more jobs each destination may start now, across every
-- process: for each domain with a destinations row, jobs in flight or a
-- rate of its own,
-- its window (floor(lim), without a row p_initial, at most p_max) minus
-- its jobs in flight ('sending' rows: distinct messages, or recipients
-- with VERP, where each recipient is its own job), 0 while paused, and at
-- most the whole tokens of its rate bucket.  ready_at: when time alone
-- gives it room again (the pause's end, the next token), NULL when only a
-- finishing job will.  Domains without a row and without jobs in flight
-- have the room of mf_destination_default_room().
CREATE OR REPLACE FUNCTION mf_destination_room(p_verp boolean, p_initial integer, p_max integer, p_rates jsonb)
RETURNS TABLE (domain text, lim integer, busy bigint, paused_until timestamptz, backoff_secs integer,
               tokens double precision, room integer, ready_at timestamptz, updated_at timestamptz)
LANGUAGE sql STABLE AS $$
    WITH b AS (
        SELECT r.domain, CASE WHEN p_verp THEN count(*) ELSE count(DISTINCT r.message_id) END AS n
          FROM recipients r WHERE r.status = 'sending' GROUP BY r.domain),
    names AS (
        SELECT d.domain FROM destinations d
        UNION SELECT b.domain FROM b
        UNION SELECT x FROM jsonb_object_keys(p_rates) x WHERE x <> '*'),
    k AS (
        SELECT n.domain,
               greatest(1, least(p_max, floor(coalesce(d.lim, p_initial))))::integer AS lim,
               coalesce(b.n, 0) AS busy,
               CASE WHEN d.paused_until > now() THEN d.paused_until END AS paused_until,
               coalesce(d.backoff_secs, 0) AS backoff_secs,
               mf_destination_rate(p_rates, n.domain) AS rate,
               d.tokens, d.tokens_at, d.updated_at
          FROM names n LEFT JOIN destinations d ON d.domain = n.domain LEFT JOIN b ON b.domain = n.domain),
    t AS (
        SELECT k.*, CASE WHEN k.rate > 0 THEN
                   least(mf_destination_bucket(k.rate),
                         coalesce(k.tokens + k.rate / 60 * extract(epoch FROM now() - k.tokens_at),
                                  mf_destination_bucket(k.rate))) END AS tok
          FROM k)
    SELECT t.domain, t.lim, t.busy, t.paused_until, t.backoff_secs, t.tok,
           CASE WHEN t.paused_until IS NOT NULL THEN 0
                ELSE greatest(0, least(t.lim - t.busy, coalesce(floor(t.tok), t.lim)))::integer END,
           CASE WHEN t.paused_until IS NOT NULL THEN t.paused_until
                WHEN t.tok < 1 THEN now() + (1 - t.tok) / (t.rate / 60) * interval '1 second' END,
           t.updated_at
      FROM t
$$;

-- The room of a domain with no destinations row and no job in flight.
CREATE OR REPLACE FUNCTION mf_destination_default_room(p_initial integer, p_max integer, p_rates jsonb)
RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN (p_rates ->> '*')::double precision > 0
                THEN least(greatest(1, least(p_initial, p_max)),
                           floor(mf_destination_bucket((p_rates ->> '*')::double precision)))
                ELSE greatest(1, least(p_initial, p_max)) END::integer
$$;

-- The claim (DESIGN.md "The claim", db_queue_claim): up to p_limit due
-- recipients leased to p_owner, each destination getting at most its room
-- (mf_destination_room) in whole jobs, paused and full destinations
-- skipped in the index scan itself, so they hold no other domain back.
-- Claims are serialised across processes by a transaction-level advisory
-- lock: each statement of this VOLATILE function takes a new snapshot, so
-- after the lock it sees the 'sending' rows the previous claimer
-- committed, and two processes cannot both fill the same room.  The lock
-- is held for one claim (well under a millisecond of work at the queue
-- sizes measured in docs/architecture.md), a few times a second.  Rows a
-- domain has no room for stay locked until the claim commits, then are
-- free again.  Jobs of a domain are taken oldest first.  The tokens spent
-- are written back to the domain's row.  p_max <= 0: no destination
-- control (no lock, no limits).
CREATE OR REPLACE FUNCTION mf_queue_claim(p_owner text, p_lease bigint, p_limit integer, p_verp boolean,
                                          p_initial integer, p_max integer, p_rates jsonb)
RETURNS TABLE (id bigint, message_id uuid, email text, domain text, attempts integer, age_secs bigint,
               mail_from text, body bytea, has_body boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_blocked text[] := '{}';
    v_room jsonb := '{}';
    v_tokens jsonb := '{}';
    v_default integer := p_limit;
    v_now timestamptz;
BEGIN
    IF p_max > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtext('mailferry.queue_claim'));
        SELECT coalesce(array_agg(x.domain) FILTER (WHERE x.room <= 0), '{}'),
               coalesce(jsonb_object_agg(x.domain, x.room), '{}'),
               coalesce(jsonb_object_agg(x.domain, x.tokens) FILTER (WHERE x.tokens IS NOT NULL), '{}')
          INTO v_blocked, v_room, v_tokens
          FROM mf_destination_room(p_verp, p_initial, p_max, p_rates) x;
        v_default := mf_destination_default_room(p_initial, p_max, p_rates);
    END IF;
    -- Due by the clock after the lock, not by now() (the transaction's
    -- start): mail that became due while the claim waited is taken.  A
    -- variable, so that it is still an index condition.
    v_now := clock_timestamp();
    RETURN QUERY
    WITH cand AS (
        SELECT r.id, r.message_id, r.domain, r.next_attempt_at,
               CASE WHEN p_verp THEN r.id::text ELSE r.message_id::text END AS job
          FROM recipients r
         WHERE r.status IN ('queued', 'scheduled', 'deferred') AND r.next_attempt_at <= v_now
           AND r.domain <> ALL (v_blocked)
         ORDER BY r.next_attempt_at LIMIT p_limit FOR UPDATE SKIP LOCKED),
    j AS (
        SELECT c.id, c.domain, c.job,
               min(c.next_attempt_at) OVER (PARTITION BY c.domain, c.job) AS due
          FROM cand c),
    pick AS (
        SELECT j.id, j.domain, j.job
          FROM (SELECT j.*, dense_rank() OVER (PARTITION BY j.domain ORDER BY j.due, j.job) AS k FROM j) j
         WHERE j.k <= coalesce((v_room ->> j.domain)::integer, v_default)),
    u AS (
        UPDATE recipients r SET status = 'sending', lease_owner = p_owner,
               lease_expires_at = now() + p_lease * interval '1 second',
               attempts = r.attempts + 1, first_attempt_at = coalesce(r.first_attempt_at, now()),
               updated_at = now()
          FROM pick WHERE r.id = pick.id
        RETURNING r.id, r.message_id, r.email, r.domain, r.attempts, r.first_attempt_at),
    spent AS (
        SELECT pick.domain, count(DISTINCT pick.job) AS n FROM pick
         WHERE p_max > 0 AND mf_destination_rate(p_rates, pick.domain) > 0 GROUP BY pick.domain),
    tok AS (
        INSERT INTO destinations AS d (domain, lim, tokens, tokens_at)
        SELECT s.domain, p_initial,
               coalesce((v_tokens ->> s.domain)::double precision,
                        mf_destination_bucket(mf_destination_rate(p_rates, s.domain))) - s.n, now()
          FROM spent s ORDER BY s.domain
        ON CONFLICT (domain) DO UPDATE SET tokens = excluded.tokens, tokens_at = excluded.tokens_at)
    -- The messages are read here, in this statement's snapshot: the
    -- caller's statement took its own before the lock, and may not see a
    -- message committed while it waited (its recipients would be claimed
    -- and then lost to the join until their lease ran out).  The body goes
    -- with the first row of each message only.
    SELECT u.id, u.message_id, u.email, u.domain, u.attempts,
           floor(extract(epoch FROM now() - u.first_attempt_at))::bigint,
           m.mail_from,
           CASE WHEN row_number() OVER (PARTITION BY u.message_id ORDER BY u.domain, u.id) = 1 THEN m.body END,
           m.body IS NOT NULL
      FROM u JOIN messages m ON m.id = u.message_id
     ORDER BY u.message_id, u.domain, u.id;
END
$$;

-- Milliseconds until the earliest recipient may be claimable (0: one is
-- now), NULL when none is waiting: due rows of a destination without room
-- count from when it has room again (mf_destination_room.ready_at), or in
-- p_poll_ms when only a finishing job - perhaps another process's - will
-- give it room.  Same parameters as mf_queue_claim.
CREATE OR REPLACE FUNCTION mf_queue_next_due(p_verp boolean, p_initial integer, p_max integer, p_rates jsonb,
                                             p_poll_ms integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_blocked text[] := '{}';
    v_ready timestamptz;
    v_next timestamptz;
BEGIN
    IF p_max > 0 THEN
        SELECT coalesce(array_agg(x.domain), '{}'),
               min(coalesce(x.ready_at, now() + p_poll_ms * interval '1 millisecond'))
          INTO v_blocked, v_ready
          FROM mf_destination_room(p_verp, p_initial, p_max, p_rates) x WHERE x.room <= 0;
    END IF;
    SELECT min(r.next_attempt_at) INTO v_next FROM recipients r
     WHERE r.status IN ('queued', 'scheduled', 'deferred') AND r.domain <> ALL (v_blocked);
    -- Nothing of an open domain due now: if anything is due, it belongs to
    -- a domain without room.
    IF (v_next IS NULL OR v_next > now()) AND v_ready IS NOT NULL
       AND EXISTS (SELECT 1 FROM recipients r WHERE r.status IN ('queued', 'scheduled', 'deferred')
                      AND r.next_attempt_at <= now()) THEN
        v_next := least(v_next, greatest(v_ready, now()));
    END IF;
    IF v_next IS NULL THEN
        RETURN NULL;  -- (greatest() would skip the NULL)
    END IF;
    RETURN ceil(greatest(extract(epoch FROM v_next - now()), 0) * 1000)::bigint;
END
$$;
