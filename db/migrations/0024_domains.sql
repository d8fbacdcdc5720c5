-- 0024_domains.sql - sending domains and their DKIM keys (issue 18;
-- db/domains.h has the operations, api/domains.c the API).
--
-- domains: one row per registered sending domain (lower case, no final
-- dot).  status pending | verified | failed (INTERFACE.md "Next
-- additions"); checks holds the last verification's per-record results as
-- a JSON array, NULL until a check ran; checked_at when it ran.
CREATE TABLE domains (
    domain       text PRIMARY KEY,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'verified', 'failed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    verified_at  timestamptz,
    checked_at   timestamptz,
    checks       jsonb
);

-- domain_keys: the DKIM key pairs of a domain, two per generation (one
-- Ed25519, one RSA-2048; RFC 8463 §1).  The private key is PKCS#8 DER
-- sealed with AES-256-GCM under master_key_file (mail/dkim_keys.h:
-- nonce || ciphertext || tag, the AAD "domain/selector"); the public
-- key is the DKIM p= value (RFC 6376 §3.6.1, RFC 8463 §4).
-- state: pending (published, not yet signing: a rotation's new keys
--        until they verify), active (signing), retiring (published but
--        no longer signing, until retire_after), retired (neither).
CREATE TABLE domain_keys (
    id            bigserial PRIMARY KEY,
    domain        text NOT NULL REFERENCES domains (domain) ON DELETE CASCADE,
    selector      text NOT NULL,
    algorithm     text NOT NULL CHECK (algorithm IN ('ed25519', 'rsa')),
    public_key    text NOT NULL,
    private_key   bytea NOT NULL,
    state         text NOT NULL DEFAULT 'active'
                  CHECK (state IN ('pending', 'active', 'retiring', 'retired')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz,
    retire_after  timestamptz,
    UNIQUE (domain, selector)
);
CREATE INDEX domain_keys_domain ON domain_keys (domain, id);
