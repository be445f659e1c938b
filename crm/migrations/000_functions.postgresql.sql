-- PostgreSQL only: DuckDB's built-in functions and collations that the portable SQL of crm/
-- calls, with DuckDB's results. Applied first on a new PostgreSQL database; DuckDB skips it.

-- The ICU collations crm.records.COLLATIONS sorts lists by, under DuckDB's names (a language
-- added there needs its line here).
CREATE COLLATION IF NOT EXISTS lt (provider = icu, locale = 'lt');
CREATE COLLATION IF NOT EXISTS fa (provider = icu, locale = 'fa');

-- jaro_winkler_similarity(a, b): DuckDB's Jaro-Winkler similarity, 0..1, NULL if either is
-- NULL; the duplicate checks of lead conversion compare names with it. Like DuckDB it compares
-- the UTF-8 bytes (so its thresholds mean the same on both engines) and gives 0 for two
-- empty strings.
CREATE OR REPLACE FUNCTION jaro_winkler_similarity(ta TEXT, tb TEXT) RETURNS DOUBLE PRECISION
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    a BYTEA := convert_to(ta, 'UTF8');
    b BYTEA := convert_to(tb, 'UTF8');
    la INTEGER := length(a);
    lb INTEGER := length(b);
    win INTEGER;
    a_hit BOOLEAN[];
    b_hit BOOLEAN[];
    m INTEGER := 0;
    t INTEGER := 0;
    k INTEGER := 1;
    p INTEGER := 0;
    i INTEGER;
    j INTEGER;
    jaro DOUBLE PRECISION;
BEGIN
    IF la = 0 OR lb = 0 THEN
        RETURN 0.0;
    END IF;
    win := greatest(greatest(la, lb) / 2 - 1, 0);
    a_hit := array_fill(FALSE, ARRAY[la]);
    b_hit := array_fill(FALSE, ARRAY[lb]);
    FOR i IN 1..la LOOP
        FOR j IN greatest(1, i - win)..least(lb, i + win) LOOP
            IF NOT b_hit[j] AND get_byte(a, i - 1) = get_byte(b, j - 1) THEN
                a_hit[i] := TRUE;
                b_hit[j] := TRUE;
                m := m + 1;
                EXIT;
            END IF;
        END LOOP;
    END LOOP;
    IF m = 0 THEN
        RETURN 0.0;
    END IF;
    FOR i IN 1..la LOOP
        IF a_hit[i] THEN
            WHILE NOT b_hit[k] LOOP
                k := k + 1;
            END LOOP;
            IF get_byte(a, i - 1) <> get_byte(b, k - 1) THEN
                t := t + 1;
            END IF;
            k := k + 1;
        END IF;
    END LOOP;
    jaro := (m::DOUBLE PRECISION / la + m::DOUBLE PRECISION / lb
             + (m - t / 2)::DOUBLE PRECISION / m) / 3;
    IF jaro > 0.7 THEN
        WHILE p < least(4, la, lb) AND get_byte(a, p) = get_byte(b, p) LOOP
            p := p + 1;
        END LOOP;
        jaro := jaro + p * 0.1 * (1 - jaro);
    END IF;
    RETURN jaro;
END;
$$;
