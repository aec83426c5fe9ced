-- honey: seed referral_partners with 500,000 partners. Run after
-- migrations/001_schema.sql:
--
--   psql -v ON_ERROR_STOP=1 "$DATABASE_URL" -f seed/001_referral_partners.sql
--
-- Idempotent: a table that already holds the full seed is left alone; one
-- that holds anything else is emptied and seeded again. Everything happens in
-- one transaction, so an interrupted run leaves no half seed behind, and a
-- concurrent run waits on the table lock and then finds the seed done.
--
-- Codes are 20 hex characters from md5 of the row number: random-looking but
-- identical on every database, so lookup costs measured anywhere compare.
-- The talk's known code, conf-partner-2026, goes in last, so it sits at the
-- end of the heap and an unindexed lookup for it reads the entire table.

\set ON_ERROR_STOP on
\set seed_rows 500000
\set known_code 'conf-partner-2026'
\set known_partner 'Conference Partner 2026'

BEGIN;
LOCK TABLE referral_partners IN SHARE ROW EXCLUSIVE MODE;

SELECT count(*) AS partner_rows,
       count(*) > 0 AS has_rows,
       count(*) = :seed_rows
         AND coalesce(bool_or(code = :'known_code'), false) AS already_seeded
  FROM referral_partners \gset

\if :already_seeded
  \echo 'referral_partners already seeded (' :partner_rows 'rows); nothing to do'
\else
  \if :has_rows
    \echo 'referral_partners holds' :partner_rows 'rows, not the seed; reseeding'
    TRUNCATE referral_partners RESTART IDENTITY;
  \endif

  -- Four batches of generated partners (n = 1 .. seed_rows - 1), then the
  -- known code as the very last row.
  \echo 'seeding referral_partners: batch 1/4'
  INSERT INTO referral_partners (code, partner_name)
  SELECT substr(md5('honey-partner-' || n), 1, 20), 'Partner ' || n
    FROM generate_series(1, 125000) AS n;

  \echo 'seeding referral_partners: batch 2/4'
  INSERT INTO referral_partners (code, partner_name)
  SELECT substr(md5('honey-partner-' || n), 1, 20), 'Partner ' || n
    FROM generate_series(125001, 250000) AS n;

  \echo 'seeding referral_partners: batch 3/4'
  INSERT INTO referral_partners (code, partner_name)
  SELECT substr(md5('honey-partner-' || n), 1, 20), 'Partner ' || n
    FROM generate_series(250001, 375000) AS n;

  \echo 'seeding referral_partners: batch 4/4'
  INSERT INTO referral_partners (code, partner_name)
  SELECT substr(md5('honey-partner-' || n), 1, 20), 'Partner ' || n
    FROM generate_series(375001, :seed_rows - 1) AS n;

  INSERT INTO referral_partners (code, partner_name)
  VALUES (:'known_code', :'known_partner');
  \echo 'seeded' :seed_rows 'partners, known code' :'known_code' 'last'
\endif

COMMIT;

-- Fresh statistics so the planner's view of the table matches the talk's.
ANALYZE referral_partners;
