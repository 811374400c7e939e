-- Job.convert_values_rows, version 1.
-- The conversion both value jobs share (docs/engine.md): one set-based pass
-- over up to p_BatchSize rows of PLSP.Patientvaerdier with the given status,
-- in PatientvaerdiId order from p_Position, turning the raw text into a typed
-- value in the analysis's canonical unit. p_Mode 'N' converts new values
-- (status 0, Job.convert_values_batch); 'I' retries invalid ones (status 2,
-- Job.convert_invalid_values_batch) and gives a value up (status 3) when its
-- attempts reach p_MaxAttempts.
--
-- RawValue and RawTime are never changed. A value converts when
--   * its code has an active RelevantVaerdi row (else unknown_analysis);
--   * the trimmed text is not empty (else empty);
--   * it reads as [comparator] number [unit]: comparator <, >, <=, >= kept in
--     Comparator; decimal comma or point; thousands separators only in groups
--     of three with the other separator as decimal mark ('1.234,5' is 1234.5,
--     '1,234.5' too); anything else is not_a_number ('7..5', '53 53', words);
--   * a lone separator before exactly three digits ('1.234') reads two ways:
--     the plausible range decides when only one reading fits, else ambiguous;
--   * the unit (written in the text, else the Unit column, else the canonical
--     one) is the canonical unit or an active RelevantVaerdiEnhed row, whose
--     (value + AddBefore) * MultiplyBy converts it (else unknown_unit);
--   * the canonical value lies in MinValue..MaxValue (else out_of_range);
--   * RawTime is 'DD-MM-YYYY' or 'YYYY-MM-DD' (local midnight, Danish time) or
--     'YYYYMMDDHHMMSS+ZZZZ' (its own offset), a real date (else bad_time).
-- A converted row gets ValueNumeric, Comparator, Unit (the canonical unit),
-- MeasuredUtc, status 1 and no reason; an invalid one status 2 (or 3) and its
-- ReasonCode. Attempts count every conversion tried.
-- p_Execute = 'N' counts what the batch would do and writes nothing.
-- Runs with the owner's rights; does not COMMIT (Job.run_batched does).
--
-- The text is read by its shape, as in the T-SQL twin: translate turns every
-- digit into 9, so '1.234,5' has the shape '9.999,9', and the grouping rules
-- compare shapes. (Capturing regular expressions cost about 0.1 ms a row
-- here: ten times the rest of the conversion.)
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: simple
-- regular expressions where T-SQL has LIKE patterns, and make_timestamp where
-- it has TRY_CONVERT (the date is checked first, so nothing raises); FOR
-- UPDATE SKIP LOCKED instead of READPAST; the results go through a temporary
-- table (T-SQL: a table variable).
CREATE PROCEDURE Job.convert_values_rows(
    p_Mode char(1),
    p_BatchSize integer,
    p_Execute char(1),
    p_MaxAttempts integer,
    INOUT p_Position bigint DEFAULT NULL,
    INOUT p_Rows integer DEFAULT NULL,
    INOUT p_Done boolean DEFAULT NULL,
    INOUT p_Note varchar(400) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Now timestamp(3) := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
    v_Status smallint;
    v_Ids bigint[];
    v_Converted integer;
    v_Invalid integer;
    v_GivenUp integer;
    v_Reasons text;
BEGIN
    -- PostgreSQL has no READPAST, IMPLICIT_TRANSACTIONS or DEADLOCK_PRIORITY: nothing to set.

    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; no transaction control here.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_Mode IS NULL OR p_Mode NOT IN ('N', 'I') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Mode is not supported: use N (new values) or I (invalid values). ';
    END IF;
    IF p_BatchSize IS NULL OR p_BatchSize < 1 OR p_BatchSize > 4000 THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (convert) or N (count only). ';
    END IF;
    IF p_Mode = 'I' AND (p_MaxAttempts IS NULL OR p_MaxAttempts < 1 OR p_MaxAttempts > 1000) THEN
        v_Errors := v_Errors || 'The value for the parameter p_MaxAttempts is not supported: give 1 to 1000 attempts for invalid values. ';
    END IF;
    IF p_Position < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Position is not supported: give NULL or the last PatientvaerdiId handled. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    v_Status := CASE p_Mode WHEN 'N' THEN 0 ELSE 2 END;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    -- The batch's rows from the partial index IX_Patientvaerdier_Unconverted;
    -- a row another session holds is skipped (the next run takes it).
    IF p_Execute = 'Y' THEN
        v_Ids := ARRAY(
            SELECT v.PatientvaerdiId
            FROM PLSP.Patientvaerdier AS v
            WHERE v.ConversionStatus IN (0, 2) AND v.ConversionStatus = v_Status
                AND v.PatientvaerdiId > coalesce(p_Position, 0)
            ORDER BY v.PatientvaerdiId
            LIMIT p_BatchSize
            FOR UPDATE SKIP LOCKED
        );
    ELSE
        v_Ids := ARRAY(
            SELECT v.PatientvaerdiId
            FROM PLSP.Patientvaerdier AS v
            WHERE v.ConversionStatus IN (0, 2) AND v.ConversionStatus = v_Status
                AND v.PatientvaerdiId > coalesce(p_Position, 0)
            ORDER BY v.PatientvaerdiId
            LIMIT p_BatchSize
        );
    END IF;

    DROP TABLE IF EXISTS pg_temp.convert_result;
    CREATE TEMP TABLE convert_result ON COMMIT DROP AS
    -- MATERIALIZED (two steps): their expressions are computed once per row, not
    -- again wherever a later step names them; measured the fastest split.
    WITH src AS (
        SELECT v.PatientvaerdiId,
            v.Code,
            v.ConversionAttempts,
            btrim(replace(coalesce(v.RawValue, ''), chr(160), ' ')) AS Raw,
            nullif(btrim(v.Unit), '') AS UnitColumn,
            btrim(v.RawTime) AS RawTime
        FROM PLSP.Patientvaerdier AS v
        WHERE v.PatientvaerdiId = ANY (v_Ids)
    ),
    analysis AS (
        -- The newest active row per code.
        SELECT DISTINCT ON (r.Code) r.Code, r.Unit, r.DataType, r.MinValue, r.MaxValue
        FROM PLSP.RelevantVaerdi AS r
        WHERE r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
            AND r.Code IN (SELECT s.Code FROM src AS s)
        ORDER BY r.Code, r.ActiveFromUtc DESC
    ),
    lexed AS MATERIALIZED (
        SELECT n.*,
            left(n.Unsigned, n.NumberLength) AS NumberText,
            nullif(btrim(substr(n.Unsigned, n.NumberLength + 1)), '') AS UnitText
        FROM (
            SELECT r.*,
                CASE WHEN left(r.Rest, 1) IN ('+', '-') THEN left(r.Rest, 1) ELSE '' END AS Sign,
                CASE WHEN left(r.Rest, 1) IN ('+', '-') THEN substr(r.Rest, 2) ELSE r.Rest END AS Unsigned,
                -- The leading run of digits and separators: what ltrim takes off.
                length(CASE WHEN left(r.Rest, 1) IN ('+', '-') THEN substr(r.Rest, 2) ELSE r.Rest END)
                    - length(ltrim(CASE WHEN left(r.Rest, 1) IN ('+', '-') THEN substr(r.Rest, 2) ELSE r.Rest END,
                        '0123456789.,')) AS NumberLength
            FROM (
                SELECT c.*, ltrim(substr(c.Raw, coalesce(length(c.Comparator), 0) + 1)) AS Rest
                FROM (
                    SELECT s.*,
                        a.Code AS RuleCode, a.Unit AS CanonicalUnit, a.DataType, a.MinValue, a.MaxValue,
                        CASE
                            WHEN left(s.Raw, 2) IN ('<=', '>=') THEN left(s.Raw, 2)
                            WHEN left(s.Raw, 1) IN ('<', '>') THEN left(s.Raw, 1)
                        END AS Comparator
                    FROM src AS s
                    LEFT JOIN analysis AS a ON a.Code = s.Code
                ) AS c
            ) AS r
        ) AS n
    ),
    shaped AS (
        -- The text's shape: every digit becomes 9, so '1.234,5' is '9.999,9'.
        SELECT h.*,
            CASE WHEN h.Dots + h.Commas > 0 THEN
                length(h.Shape) - least(nullif(strpos(reverse(h.Shape), '.'), 0), nullif(strpos(reverse(h.Shape), ','), 0)) + 1
            END AS LastSepAt
        FROM (
            SELECT l.*,
                translate(l.NumberText, '0123456789', '9999999999') AS Shape,
                length(l.NumberText) - length(replace(l.NumberText, '.', '')) AS Dots,
                length(l.NumberText) - length(replace(l.NumberText, ',', '')) AS Commas
            FROM lexed AS l
        ) AS h
    ),
    parts AS (
        SELECT s.*,
            left(s.NumberText, s.LastSepAt - 1) AS IntPart,
            substr(s.NumberText, s.LastSepAt + 1) AS FracPart,
            substr(s.NumberText, s.LastSepAt, 1) AS LastSep,
            left(s.Shape, s.LastSepAt - 1) AS IntShape,
            substr(s.Shape, s.LastSepAt + 1) AS FracShape,
            NOT (coalesce(s.UnitText ~ '[0-9]' OR left(s.UnitText, 1) IN ('+', '-'), false)
                OR s.NumberText = '' OR length(s.NumberText) > 20 OR left(s.NumberText, 1) !~ '[0-9]') AS Lexed
        FROM shaped AS s
    ),
    readings AS MATERIALIZED (
        SELECT p.*,
            CASE
                WHEN NOT p.Lexed THEN NULL
                -- an integer
                WHEN p.Dots + p.Commas = 0 THEN p.Sign || p.NumberText
                -- one separator: the decimal mark
                WHEN p.Dots + p.Commas = 1 AND p.IntShape ~ '^9+$' AND p.FracShape ~ '^9+$'
                    THEN p.Sign || replace(p.NumberText, ',', '.')
                -- both: the last one is the decimal mark, the other groups thousands
                WHEN p.Dots > 0 AND p.Commas > 0
                    AND (p.LastSep = ',' AND p.Commas = 1 OR p.LastSep = '.' AND p.Dots = 1)
                    AND replace(p.IntShape, ',', '.') IN (
                        '9.999', '99.999', '999.999', '9.999.999', '99.999.999', '999.999.999',
                        '9.999.999.999', '99.999.999.999', '999.999.999.999'
                    )
                    AND p.NumberText NOT LIKE '0%' AND p.FracShape ~ '^9+$'
                    THEN p.Sign || replace(replace(p.IntPart, '.', ''), ',', '') || '.' || p.FracPart
                -- one kind, twice or more: thousands groups only
                WHEN (p.Dots = 0 OR p.Commas = 0) AND p.Dots + p.Commas >= 2
                    AND replace(p.Shape, ',', '.') IN (
                        '9.999.999', '99.999.999', '999.999.999',
                        '9.999.999.999', '99.999.999.999', '999.999.999.999'
                    )
                    AND p.NumberText NOT LIKE '0%'
                    THEN p.Sign || replace(replace(p.NumberText, '.', ''), ',', '')
            END AS FirstText,
            CASE
                WHEN p.Lexed AND replace(p.Shape, ',', '.') IN ('9.999', '99.999', '999.999')
                    AND p.NumberText NOT LIKE '0%'
                    THEN p.Sign || replace(replace(p.NumberText, '.', ''), ',', '')
            END AS SecondText,
            coalesce(p.UnitText, p.UnitColumn, p.CanonicalUnit) AS GivenUnit
        FROM parts AS p
    ),
    units AS (
        SELECT r.*,
            CASE WHEN lower(r.GivenUnit) = lower(r.CanonicalUnit) THEN 0 ELSE e.AddBefore END AS AddBefore,
            CASE WHEN lower(r.GivenUnit) = lower(r.CanonicalUnit) THEN 1 ELSE e.MultiplyBy END AS MultiplyBy
        FROM readings AS r
        LEFT JOIN LATERAL (
            SELECT u.AddBefore, u.MultiplyBy
            FROM PLSP.RelevantVaerdiEnhed AS u
            WHERE u.Code = r.Code AND lower(u.Unit) = lower(r.GivenUnit)
                AND u.ActiveFromUtc <= v_Now AND (u.ActiveToUtc IS NULL OR u.ActiveToUtc > v_Now)
            ORDER BY u.ActiveFromUtc DESC
            LIMIT 1
        ) AS e ON true
    ),
    valued AS (
        SELECT u.*,
            round((u.FirstText::numeric + u.AddBefore) * u.MultiplyBy, 4) AS FirstValue,
            round((u.SecondText::numeric + u.AddBefore) * u.MultiplyBy, 4) AS SecondValue,
            -- year, month, day, hour, minute, second of the three formats
            CASE
                WHEN u.RawTime ~ '^[0-9]{2}-[0-9]{2}-[0-9]{4}$' THEN ARRAY[
                    substr(u.RawTime, 7, 4), substr(u.RawTime, 4, 2), substr(u.RawTime, 1, 2), '0', '0', '0'
                ]::integer[]
                WHEN u.RawTime ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN ARRAY[
                    substr(u.RawTime, 1, 4), substr(u.RawTime, 6, 2), substr(u.RawTime, 9, 2), '0', '0', '0'
                ]::integer[]
                WHEN u.RawTime ~ '^[0-9]{14}[+-][0-9]{4}$' THEN ARRAY[
                    substr(u.RawTime, 1, 4), substr(u.RawTime, 5, 2), substr(u.RawTime, 7, 2),
                    substr(u.RawTime, 9, 2), substr(u.RawTime, 11, 2), substr(u.RawTime, 13, 2)
                ]::integer[]
            END AS Parts,
            CASE WHEN u.RawTime ~ '^[0-9]{14}[+-][0-9]{4}$' THEN
                (CASE substr(u.RawTime, 15, 1) WHEN '-' THEN -1 ELSE 1 END)
                * (substr(u.RawTime, 16, 2)::integer * 60 + substr(u.RawTime, 18, 2)::integer)
            END AS OffsetMinutes
        FROM units AS u
    ),
    fitted AS (
        SELECT x.*,
            (x.FirstValue IS NOT NULL AND x.FirstValue >= coalesce(x.MinValue, -99999999999999)
                AND x.FirstValue <= coalesce(x.MaxValue, 99999999999999)) AS FirstFits,
            (x.SecondValue IS NOT NULL AND x.SecondValue >= coalesce(x.MinValue, -99999999999999)
                AND x.SecondValue <= coalesce(x.MaxValue, 99999999999999)) AS SecondFits
        FROM valued AS x
    ),
    timed AS (
        SELECT f.*,
            CASE
                -- In this order: CASE checks the month before make_date may see it.
                WHEN f.Parts IS NULL THEN NULL
                WHEN f.Parts[2] NOT BETWEEN 1 AND 12 OR f.Parts[3] < 1 OR f.Parts[1] < 1900 THEN NULL
                WHEN f.Parts[4] > 23 OR f.Parts[5] > 59 OR f.Parts[6] > 59 THEN NULL
                WHEN f.Parts[3] > extract(DAY FROM make_date(f.Parts[1], f.Parts[2], 1) + INTERVAL '1 month - 1 day')
                    THEN NULL
                WHEN f.OffsetMinutes IS NOT NULL THEN
                    make_timestamp(f.Parts[1], f.Parts[2], f.Parts[3], f.Parts[4], f.Parts[5], f.Parts[6])
                    - f.OffsetMinutes * INTERVAL '1 minute'
                ELSE (make_timestamp(f.Parts[1], f.Parts[2], f.Parts[3], 0, 0, 0) AT TIME ZONE 'Europe/Copenhagen')
                    AT TIME ZONE 'UTC'
            END AS MeasuredUtc
        FROM fitted AS f
    )

    SELECT t.PatientvaerdiId,
        t.ConversionAttempts,
        CASE
            WHEN t.RuleCode IS NULL THEN 'unknown_analysis'
            WHEN t.Raw = '' THEN 'empty'
            WHEN t.DataType = 'text' THEN NULL
            WHEN t.FirstText IS NULL THEN 'not_a_number'
            WHEN t.MultiplyBy IS NULL THEN 'unknown_unit'
            WHEN t.FirstFits AND t.SecondFits THEN 'ambiguous'
            WHEN NOT t.FirstFits AND NOT t.SecondFits THEN 'out_of_range'
            WHEN t.MeasuredUtc IS NULL THEN 'bad_time'
        END AS Reason,
        CASE WHEN t.DataType = 'text' THEN NULL WHEN t.FirstFits THEN t.FirstValue ELSE t.SecondValue END AS Value,
        t.Comparator,
        t.CanonicalUnit,
        t.MeasuredUtc
    FROM timed AS t;

    IF p_Execute = 'Y' THEN
        UPDATE PLSP.Patientvaerdier AS v SET
            ConversionStatus = CASE
                WHEN r.Reason IS NULL THEN 1
                WHEN p_Mode = 'I' AND r.ConversionAttempts + 1 >= p_MaxAttempts THEN 3
                ELSE 2
            END,
            ConversionAttempts = least(r.ConversionAttempts + 1, 32767),
            ReasonCode = r.Reason,
            ValueNumeric = CASE WHEN r.Reason IS NULL THEN r.Value END,
            Comparator = CASE WHEN r.Reason IS NULL THEN r.Comparator END,
            Unit = CASE WHEN r.Reason IS NULL THEN r.CanonicalUnit ELSE v.Unit END,
            MeasuredUtc = CASE WHEN r.Reason IS NULL THEN r.MeasuredUtc END,
            ConvertedUtc = v_Now
        FROM pg_temp.convert_result AS r
        WHERE v.PatientvaerdiId = r.PatientvaerdiId;
    END IF;

    SELECT count(*) FILTER (WHERE r.Reason IS NULL),
        count(*) FILTER (WHERE r.Reason IS NOT NULL AND NOT (p_Mode = 'I' AND r.ConversionAttempts + 1 >= p_MaxAttempts)),
        count(*) FILTER (WHERE r.Reason IS NOT NULL AND p_Mode = 'I' AND r.ConversionAttempts + 1 >= p_MaxAttempts),
        string_agg(DISTINCT r.Reason, ' ' ORDER BY r.Reason)
    INTO v_Converted, v_Invalid, v_GivenUp, v_Reasons
    FROM pg_temp.convert_result AS r;

    p_Rows := coalesce(cardinality(v_Ids), 0);
    p_Done := p_Rows < p_BatchSize;
    p_Position := coalesce(v_Ids[cardinality(v_Ids)], p_Position);
    p_Note := left(concat(
        CASE WHEN p_Execute = 'Y' THEN '' ELSE 'would have: ' END,
        'converted ', v_Converted, ', invalid ', v_Invalid, ', rejected ', v_GivenUp,
        CASE WHEN v_Reasons IS NOT NULL THEN ' (' || v_Reasons || ')' END
    ), 400);
END;
$$;
