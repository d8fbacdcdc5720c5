-- 0020_schema_functions.sql - which db/functions.sql the database has.
--
-- The SQL functions are no longer defined by migrations: "mailferry
-- migrate" applies db/functions.sql, compiled into the binary, after the
-- migrations on every run, and records its SHA-256 here (one row).  The
-- readiness check (/readyz) compares it with the binary's, so a changed
-- function is noticed like a missing migration (db/migrate.c).
CREATE TABLE schema_functions (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
