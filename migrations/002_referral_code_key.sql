-- honey: how referral codes are compared. Plain SQL for psql, safe to rerun.
--
-- Partner codes are printed on flyers and slides and typed in by hand, so a
-- lookup must not care about case, separators or look-alike characters:
-- "CONF-Partner 2026", "conf_partner_2026" and "c0nf-partner-2026" are all
-- the same code. referral_code_key() turns a code into that comparison key.

SET client_min_messages = warning;

CREATE OR REPLACE FUNCTION referral_code_key(raw text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    key text := '';
    ch  text;
BEGIN
    FOREACH ch IN ARRAY regexp_split_to_array(lower(raw), '') LOOP
        -- Separators people put in (or leave out) when copying a code.
        IF ch IN ('-', '_', ' ', '.', '/') THEN
            CONTINUE;
        END IF;
        -- Characters that look alike on a projector.
        key := key || CASE ch
            WHEN 'o' THEN '0'
            WHEN 'i' THEN '1'
            WHEN 'l' THEN '1'
            ELSE ch
        END;
    END LOOP;
    RETURN key;
END
$$;
