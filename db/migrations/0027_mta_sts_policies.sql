-- 0027_mta_sts_policies.sql - the MTA-STS policy cache (RFC 8461 §5.1),
-- shared by every delivery process and kept across restarts: one row per
-- policy domain (lower case, no final dot), written after each successful
-- fetch (relay/mta_sts.c through db/sts_cache.c).  policy_id is the id of
-- the "_mta-sts" TXT record the policy was fetched under (§3.1); mode,
-- max_age and the mx patterns are the policy's (§3.2); expires_at is
-- fetched_at + max_age, after which the row is not used and the retention
-- housekeeper deletes it (db/retention.c, kind mta_sts_policies).
CREATE TABLE mta_sts_policies (
    domain text PRIMARY KEY,
    policy_id text NOT NULL,
    mode text NOT NULL CONSTRAINT mta_sts_policies_mode_check CHECK (mode IN ('enforce', 'testing', 'none')),
    max_age bigint NOT NULL,
    mx text[] NOT NULL,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX mta_sts_policies_expires_idx ON mta_sts_policies (expires_at);
