-- 0023_destinations.sql - per-destination (recipient domain) delivery
-- control shared by every delivery process on the database (issue 17
-- point 3; queue/destination.h has the feedback rule, db/functions.sql
-- mf_destination_room() and mf_queue_claim() the claim that obeys it).
--
-- One row per domain that has given feedback or is rate limited:
--   lim           the concurrency window (jobs at once, all processes);
--                 fractional because above ssthresh positive feedback
--                 adds 1/window per successful job (Postfix's
--                 1/concurrency), the claim uses floor(lim)
--   ssthresh      the slow-start threshold: below it each successful job
--                 adds 1 to lim (the window doubles per round), above it
--                 1/lim; a throttle sets it to half the window; NULL: none
--                 yet (a domain that never throttled grows fast to the cap)
--   backoff_secs  the pause the last throttle gave (0 after a success); the
--                 next throttle doubles it
--   paused_until  no job of the domain is claimed before this
--   tokens, tokens_at  the destination_rate token bucket (jobs), refilled
--                 at the configured rate from tokens_at
-- A domain without a row starts at the initial window, unpaused, with a
-- full bucket.
CREATE TABLE destinations (
    domain        text PRIMARY KEY,
    lim           double precision NOT NULL,
    ssthresh      double precision,
    backoff_secs  integer NOT NULL DEFAULT 0,
    paused_until  timestamptz,
    tokens        double precision,
    tokens_at     timestamptz,
    last_code     integer,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Jobs in flight per domain, across processes: the claim counts distinct
-- messages per domain among 'sending' rows.  Partial, like
-- recipients_lease_idx: only the rows in flight (hundreds), never the
-- delivered history, and an index-only scan answers the count.
CREATE INDEX recipients_sending_domain_idx ON recipients (domain, message_id) WHERE status = 'sending';
