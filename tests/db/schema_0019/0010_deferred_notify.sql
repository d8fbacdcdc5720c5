-- 0010_deferred_notify.sql - the send API's committer wakes the schedulers
-- after its COMMIT rather than inside it (issue #3 item 7).
--
-- NOTIFY takes a database-wide lock at pre-commit and keeps it until the
-- commit record is flushed (PostgreSQL manual, NOTIFY), so the statement
-- trigger below serialised the commits - fsync included - of every
-- transaction inserting recipients.  A session that notifies after its
-- own commit sets mailferry.defer_notify = on and the trigger leaves it
-- alone; every other writer (replay, tests, psql) still wakes the
-- schedulers from the trigger.
CREATE OR REPLACE FUNCTION mf_notify_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mailferry.defer_notify', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('mailferry_queue', '');
    END IF;
    RETURN NULL;
END
$$;
