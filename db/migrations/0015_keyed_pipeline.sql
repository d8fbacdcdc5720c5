-- 0015_keyed_pipeline.sql - requests with an Idempotency-Key join the
-- pipelined group commit (issue #3 item 7).
--
-- A group with a key used to be committed on a path of its own: BEGIN and
-- the key claim, then the rows, then the stored answer and COMMIT, three
-- round trips each waiting for the last - about half the rate of requests
-- without a key (measured: ~8k against ~17k req/s at 32 clients).  Now a
-- group is one pipelined transaction whose statements decide by
-- themselves.  The claim records the id of the message its unit would
-- create, so a claim this transaction won is a key row naming that
-- message: the rows of the units that lost are never written, and the
-- answer of each unit that won is built and stored by the statement that
-- writes its recipients (db/accept.c).
ALTER TABLE idempotency_keys ADD COLUMN message_id uuid;

-- The claim's foreign key check (an SPI query and a row lock per key) was
-- 10% of the committer's backend under keyed load; API keys are never
-- deleted (migration 0013 dropped messages' key for the same reason).
ALTER TABLE idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_api_key_id_fkey;

-- A key row is written twice in its transaction: claimed, then given its
-- stored answer.  At the default fillfactor the second version rarely
-- found room on its page (measured: 2% HOT updates), so every keyed
-- request added two more index entries; with half of each page kept free
-- 98-99% of those updates are HOT.  Keys live 24 hours.
ALTER TABLE idempotency_keys SET (fillfactor = 50);
