-- schema_ceiling.sql - pgbench script (make bench): what PostgreSQL alone
-- can write of mailferry's own rows, with no HTTP, JSON or MIME in front:
-- one group of 25 accepted messages (a message, its recipient and its
-- message.queued event each, with every index and trigger of the schema)
-- per transaction, as the group committer writes them.  Read its rate as
-- the ceiling of POST /v1/messages on this machine for this schema.  The
-- session settings are the committer's (db/messages.c).
SET client_min_messages = warning;
SET mailferry.defer_notify = on;
BEGIN;
CREATE TEMP TABLE IF NOT EXISTS bench_ids (id uuid) ON COMMIT DELETE ROWS;
INSERT INTO bench_ids SELECT gen_random_uuid() FROM generate_series(1, 25);
INSERT INTO messages (id, mail_from, from_header, subject, message_id_hdr, tags, metadata, size, body, request)
  SELECT id, 'orders@shop.example', 'Shop <orders@shop.example>', 'Your order #1001', id::text || '@shop.example',
         '{order}', '{}', 754, convert_to(repeat('x', 754), 'UTF8'),
         '{"from":"Shop <orders@shop.example>","to":"customer@example.net","subject":"Your order #1001","tags":["order"]}'
    FROM bench_ids;
INSERT INTO recipients (message_id, position, email, domain, kind, status, next_attempt_at)
  SELECT id, 0, 'customer@example.net', 'example.net', 'to', 'queued', now() FROM bench_ids;
INSERT INTO events (message_id, recipient_id, type, payload)
  SELECT r.message_id, r.id, 'message.queued', mf_event_payload(0, 'message.queued', r, m)
    FROM bench_ids b JOIN recipients r ON r.message_id = b.id JOIN messages m ON m.id = b.id;
COMMIT;
