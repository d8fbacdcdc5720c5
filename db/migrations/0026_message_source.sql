-- 0026_message_source.sql - where a message came in (issue 19): 'api'
-- (POST /v1/messages and its batch) or 'smtp' (the submission listener,
-- submit/).  GET /v1/messages/{id} shows it as "source" (mf_api_message in
-- db/functions.sql).  A constant default makes this a catalogue change
-- only: existing rows are not rewritten (PostgreSQL 11 and later).
--
-- Submission's idempotency (a repeated Message-ID from the same key) needs
-- no table of its own: it claims idempotency_keys rows (migration 0015) with
-- the key "smtp:<Message-ID>", in the group's own transaction like an
-- Idempotency-Key; the "smtp:" prefix keeps the two apart.
ALTER TABLE messages ADD COLUMN source text NOT NULL DEFAULT 'api'
    CONSTRAINT messages_source_check CHECK (source IN ('api', 'smtp'));
