-- 0022_queue_owners.sql - the registry of live delivery processes, so that
-- the lease reaper frees the leases of a process that is gone at once
-- instead of after lease_time (issue 17, point 4).
--
-- One row per delivery process: its lease owner prefix ("host:pid:random",
-- the claims' lease_owner without ":seq"), and the key of a session-level
-- advisory lock that the process holds on a connection it keeps open for
-- its whole life (the housekeeper's).  The lock goes when that connection
-- does, i.e. when the process dies; pg_locks shows it to every role
-- (mf_advisory_lock_held in db/functions.sql).  seen_at is refreshed by
-- every reaper round of the owner, and gives a live process whose
-- connection dropped the time to reconnect and register again.  The rows
-- are written and deleted by db/queue.c only; queue/queue.h has the rules.
CREATE TABLE queue_owners (
    owner          text PRIMARY KEY,
    lock_key       bigint NOT NULL,
    backend_pid    integer NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    seen_at        timestamptz NOT NULL DEFAULT now()
);
