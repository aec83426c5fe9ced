-- honey: database schema. Plain SQL for psql, safe to run any number of times.
--
--   psql -v ON_ERROR_STOP=1 "$DATABASE_URL" -f migrations/001_schema.sql
--   psql ... -v statement_timeout=5s -f migrations/001_schema.sql   # other timeout
--
-- It also sets the database's default statement_timeout (3s unless told
-- otherwise): a runaway query must fail rather than hold a connection forever.
-- The setting applies to sessions opened after this script.

\set ON_ERROR_STOP on
-- Reruns would otherwise print "already exists, skipping" for every table.
SET client_min_messages = warning;

\if :{?statement_timeout}
\else
  \set statement_timeout 3s
\endif

BEGIN;

CREATE TABLE IF NOT EXISTS votes (
    id            bigserial   PRIMARY KEY,
    choice        text        NOT NULL
                  CONSTRAINT votes_choice_check
                  CHECK (choice IN ('print', 'stare', 'ai', 'revert', 'restart')),
    referral_code text        NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Deliberately NO index on code. Every referral lookup
-- (`WHERE code = $1`) scans the whole seeded table: that is the slowness the
-- talk plants and then diagnoses. Do not "fix" it here.
CREATE TABLE IF NOT EXISTS referral_partners (
    id           bigserial   PRIMARY KEY,
    code         text        NOT NULL,
    partner_name text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

COMMIT;

SELECT current_database() AS dbname \gset
ALTER DATABASE :"dbname" SET statement_timeout = :'statement_timeout';
\echo 'schema ready; statement_timeout for new sessions of' :"dbname" 'is' :'statement_timeout'
