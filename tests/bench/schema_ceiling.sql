-- schema_ceiling.sql - pgbench script (make bench): what PostgreSQL alone
-- can write of mailferry's own rows, with no HTTP, JSON or MIME in front:
-- one group of 25 accepted messages (a message, its recipient and its
-- message.queued event each, with every index and trigger of the schema)
-- per transaction, as the group committer writes them (here in one
-- statement, so a little cheaper than the committer's five).  Read its rate as
-- the ceiling of POST /v1/messages on this machine for this schema.  The
-- session settings are the committer's (db/messages.c); the accept events
-- carry no stored payload, as the committer writes them (migration 0012);
-- the ids are time-ordered like mailferry's UUIDv7 (bench_uuid7(), made by
-- run.sh for the run: PostgreSQL 15 has no uuidv7()).  The body has the size
-- of the bench's 2.2 KB message and compresses about as well (lz4: the
-- real one to ~1,330 bytes; here 1,100 random bytes, which run.sh puts in
-- for BODY_HEX, and 1,092 of repeated text); the request is stored, as
-- the API stores it, without text and HTML.
SET client_min_messages = warning;
SET mailferry.defer_notify = on;
SET jit = off;
SET enable_seqscan = off;
WITH m AS (
  INSERT INTO messages (id, mail_from, from_header, subject, message_id_hdr, tags, metadata, size, body, request)
  SELECT g.id, 'orders@shop.example', 'Shop <orders@shop.example>', 'Your order #100123', g.id::text || '@shop.example',
         '{order}', '{}', 2192, decode('BODY_HEX', 'hex') || convert_to(repeat('Thank you for your order. ', 42), 'UTF8'),
         '{"from":"Shop <orders@shop.example>","to":"customer@example.net","subject":"Your order #100123","tags":["order"]}'
    FROM (SELECT bench_uuid7() AS id FROM generate_series(1, 25)) g
  RETURNING *),
r AS (
  INSERT INTO recipients (message_id, position, email, domain, kind, status, next_attempt_at)
  SELECT m.id, 0, 'customer@example.net', 'example.net', 'to', 'queued', now() FROM m
  RETURNING *)
INSERT INTO events (message_id, recipient_id, type)
SELECT r.message_id, r.id, 'message.queued' FROM r ORDER BY r.id;
