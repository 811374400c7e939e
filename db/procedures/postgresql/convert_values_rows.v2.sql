-- Job.convert_values_rows, version 2.
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
-- Version 2 (the same decisions as version 1, 7-13 times faster over 1,000,000
-- values; docs/benchmarks.md, docs/engine.md):
--   * two statements per batch: pick the rows (locked, skipping locked ones);
--     convert, write and count them in one statement (version 1: a temporary
--     table created per batch, a second index scan, a unit lookup per row);
--   * each raw text is read once, in steps that are subqueries with OFFSET 0
--     (the planner keeps each as a step: a column is computed once, never
--     copied into every later use; lateral steps got Memoize nodes instead):
--     comparator, sign, number text and unit text, the number's readings, the
--     time's parts;
--   * the grouping rules are boolean regular expressions tried in order, only
--     on text with a separator (a plain integer tries none); capturing ones
--     cost 20-90 microseconds a row here, boolean ones about one;
--   * the rules are joined once per statement: the newest active analysis per
--     code, the newest active unit mapping per code and lower-case unit;
--   * the time's validity is integer arithmetic (days in the month);
--   * the write joins on ctid (one TID fetch a row; the picked rows are locked,
--     so they cannot move).
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine, one a line:
--   * boolean regular expressions where T-SQL compares shapes with LIKE (no LIKE classes here);
--   * make_timestamp behind integer validity checks where T-SQL has TRY_CONVERT (no TRY_ here);
--   * rows picked as ctids FOR UPDATE SKIP LOCKED where T-SQL takes ids UPDLOCK, READPAST (no READPAST);
--   * convert, write and count in one data-modifying WITH where T-SQL fills a table variable, then updates;
--   * enable_seqscan off for the call: the planner would scan the table rather than fetch by ctid.
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
-- The picked rows are read and written by their ctid. The planner prices a TID
-- scan at one random page per row and picks a full scan of the table instead
-- on tables up to a few hundred thousand rows (measured: 85 ms against 0.5 ms
-- for 4,000 rows of 200,000); no statement here wants a sequential scan of a
-- large table.
SET enable_seqscan = off
AS $$
DECLARE
    v_Errors text := '';
    v_Now timestamp(3) := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
    v_Status smallint;
    v_At tid[];
    v_Last bigint;
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
    -- a row another session holds is skipped (the next run takes it). The dry
    -- run takes no locks.
    IF p_Execute = 'Y' THEN
        SELECT array_agg(b.RowAt), count(*), max(b.PatientvaerdiId)
        INTO v_At, p_Rows, v_Last
        FROM (
            SELECT v.ctid AS RowAt, v.PatientvaerdiId
            FROM PLSP.Patientvaerdier AS v
            WHERE v.ConversionStatus IN (0, 2) AND v.ConversionStatus = v_Status
                AND v.PatientvaerdiId > coalesce(p_Position, 0)
            ORDER BY v.PatientvaerdiId
            LIMIT p_BatchSize
            FOR UPDATE OF v SKIP LOCKED
        ) AS b;
    ELSE
        SELECT array_agg(b.RowAt), count(*), max(b.PatientvaerdiId)
        INTO v_At, p_Rows, v_Last
        FROM (
            SELECT v.ctid AS RowAt, v.PatientvaerdiId
            FROM PLSP.Patientvaerdier AS v
            WHERE v.ConversionStatus IN (0, 2) AND v.ConversionStatus = v_Status
                AND v.PatientvaerdiId > coalesce(p_Position, 0)
            ORDER BY v.PatientvaerdiId
            LIMIT p_BatchSize
        ) AS b;
    END IF;

    -- Convert and write: one pass over the picked rows.
    WITH analysis AS (
        -- The newest active row per code.
        SELECT DISTINCT ON (r.Code) r.Code, r.Unit, lower(r.Unit) AS UnitKey, r.DataType, r.MinValue, r.MaxValue
        FROM PLSP.RelevantVaerdi AS r
        WHERE r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
        ORDER BY r.Code, r.ActiveFromUtc DESC
    ),
    mapping AS (
        -- The newest active mapping per code and unit (units compare without case).
        SELECT DISTINCT ON (u.Code, lower(u.Unit)) u.Code, lower(u.Unit) AS UnitKey, u.AddBefore, u.MultiplyBy
        FROM PLSP.RelevantVaerdiEnhed AS u
        WHERE u.ActiveFromUtc <= v_Now AND (u.ActiveToUtc IS NULL OR u.ActiveToUtc > v_Now)
        ORDER BY u.Code, lower(u.Unit), u.ActiveFromUtc DESC
    ),
    conv AS (
        SELECT g.RowAt,
            g.ConversionAttempts,
            g.CanonicalUnit,
            g.Comparator,
            CASE
                WHEN g.RuleCode IS NULL THEN 'unknown_analysis'
                WHEN g.Raw = '' THEN 'empty'
                WHEN g.DataType = 'text' THEN NULL
                WHEN g.FirstText IS NULL THEN 'not_a_number'
                WHEN g.MultiplyBy IS NULL THEN 'unknown_unit'
                WHEN g.FirstFits AND g.SecondFits THEN 'ambiguous'
                WHEN NOT g.FirstFits AND NOT g.SecondFits THEN 'out_of_range'
                WHEN g.MeasuredUtc IS NULL THEN 'bad_time'
            END AS Reason,
            CASE
                WHEN g.DataType = 'text' THEN NULL
                WHEN g.FirstFits THEN g.FirstValue
                WHEN g.SecondFits THEN g.SecondValue
            END AS Value,
            g.MeasuredUtc
        -- Each step below is a subquery with OFFSET 0, which the planner keeps
        -- as a step: a column is computed once per row, never copied into
        -- every later use of it.
        FROM (
            -- whether each reading is plausible
            SELECT f.*,
                (f.FirstValue >= coalesce(f.MinValue, -99999999999999)
                    AND f.FirstValue <= coalesce(f.MaxValue, 99999999999999)) IS TRUE AS FirstFits,
                (f.SecondValue >= coalesce(f.MinValue, -99999999999999)
                    AND f.SecondValue <= coalesce(f.MaxValue, 99999999999999)) IS TRUE AS SecondFits
            FROM (
                -- the readings in the canonical unit
                SELECT u.*,
                    round((u.FirstText::numeric + u.AddBefore) * u.MultiplyBy, 4) AS FirstValue,
                    round((u.SecondText::numeric + u.AddBefore) * u.MultiplyBy, 4) AS SecondValue
                FROM (
                    -- the rules, joined once: the analysis, then the mapping of the given unit;
                    -- and the time as UTC (date only: local midnight, Danish time), a real date
                    SELECT d.*,
                        a.Code AS RuleCode, a.Unit AS CanonicalUnit, a.DataType, a.MinValue, a.MaxValue,
                        CASE WHEN d.GivenUnit IS NULL OR d.GivenUnit = a.UnitKey THEN 0 ELSE e.AddBefore END AS AddBefore,
                        CASE WHEN d.GivenUnit IS NULL OR d.GivenUnit = a.UnitKey THEN 1 ELSE e.MultiplyBy END AS MultiplyBy,
                        CASE
                            WHEN d.Y IS NULL THEN NULL
                            WHEN d.Mo NOT BETWEEN 1 AND 12 OR d.D < 1 OR d.Y < 1900 OR d.H > 23 OR d.Mi > 59 OR d.Se > 59
                                THEN NULL
                            -- days in the month: February by the leap-year rule, else 30 or 31
                            WHEN d.D > CASE WHEN d.Mo = 2
                                    THEN CASE WHEN d.Y % 4 = 0 AND (d.Y % 100 <> 0 OR d.Y % 400 = 0) THEN 29 ELSE 28 END
                                    ELSE 30 + (d.Mo + d.Mo / 8) % 2
                                END THEN NULL
                            WHEN d.OffsetMinutes IS NOT NULL THEN
                                make_timestamp(d.Y, d.Mo, d.D, d.H, d.Mi, d.Se) - d.OffsetMinutes * INTERVAL '1 minute'
                            ELSE (make_timestamp(d.Y, d.Mo, d.D, 0, 0, 0) AT TIME ZONE 'Europe/Copenhagen') AT TIME ZONE 'UTC'
                        END AS MeasuredUtc
                    FROM (
                        -- the readings: the first (a separator is a decimal mark where it can be),
                        -- the second (a lone separator before three digits groups thousands);
                        -- the given unit; the time's parts by its format
                        SELECT n.RowAt, n.ConversionAttempts, n.Code, n.Raw, n.Comparator,
                            CASE
                                WHEN n.NumberText = '' OR length(n.NumberText) > 20 OR left(n.NumberText, 1) IN ('.', ',')
                                    OR n.UnitText ~ '[0-9]' OR left(n.UnitText, 1) IN ('+', '-') THEN NULL
                                -- an integer
                                WHEN strpos(n.NumberText, '.') = 0 AND strpos(n.NumberText, ',') = 0
                                    THEN n.Sign || n.NumberText
                                -- one separator: the decimal mark
                                WHEN n.NumberText ~ '^[0-9]+[.,][0-9]+$' THEN n.Sign || replace(n.NumberText, ',', '.')
                                -- both: the last one is the decimal mark, the other groups thousands
                                WHEN n.NumberText ~ '^[1-9][0-9]{0,2}(\.[0-9]{3}){1,3},[0-9]+$'
                                    THEN n.Sign || replace(replace(n.NumberText, '.', ''), ',', '.')
                                WHEN n.NumberText ~ '^[1-9][0-9]{0,2}(,[0-9]{3}){1,3}\.[0-9]+$'
                                    THEN n.Sign || replace(n.NumberText, ',', '')
                                -- one kind, twice or more: thousands groups only
                                WHEN n.NumberText ~ '^[1-9][0-9]{0,2}((\.[0-9]{3}){2,3}|(,[0-9]{3}){2,3})$'
                                    THEN n.Sign || replace(replace(n.NumberText, '.', ''), ',', '')
                            END AS FirstText,
                            CASE
                                WHEN length(n.NumberText) BETWEEN 5 AND 7 AND n.NumberText ~ '^[1-9][0-9]{0,2}[.,][0-9]{3}$'
                                    AND NOT coalesce(n.UnitText ~ '[0-9]' OR left(n.UnitText, 1) IN ('+', '-'), false)
                                    THEN n.Sign || replace(replace(n.NumberText, '.', ''), ',', '')
                            END AS SecondText,
                            lower(coalesce(n.UnitText, n.UnitColumn)) AS GivenUnit,
                            CASE WHEN n.TimeFormat IS NOT NULL
                                THEN substr(n.RawTime, CASE n.TimeFormat WHEN 1 THEN 7 ELSE 1 END, 4)::integer
                            END AS Y,
                            CASE WHEN n.TimeFormat IS NOT NULL
                                THEN substr(n.RawTime, CASE n.TimeFormat WHEN 1 THEN 4 WHEN 2 THEN 6 ELSE 5 END, 2)::integer
                            END AS Mo,
                            CASE WHEN n.TimeFormat IS NOT NULL
                                THEN substr(n.RawTime, CASE n.TimeFormat WHEN 1 THEN 1 WHEN 2 THEN 9 ELSE 7 END, 2)::integer
                            END AS D,
                            CASE n.TimeFormat WHEN 3 THEN substr(n.RawTime, 9, 2)::integer ELSE 0 END AS H,
                            CASE n.TimeFormat WHEN 3 THEN substr(n.RawTime, 11, 2)::integer ELSE 0 END AS Mi,
                            CASE n.TimeFormat WHEN 3 THEN substr(n.RawTime, 13, 2)::integer ELSE 0 END AS Se,
                            CASE n.TimeFormat WHEN 3 THEN
                                (CASE substr(n.RawTime, 15, 1) WHEN '-' THEN -1 ELSE 1 END)
                                * (substr(n.RawTime, 16, 2)::integer * 60 + substr(n.RawTime, 18, 2)::integer)
                            END AS OffsetMinutes
                        FROM (
                            -- the leading run of digits and separators (what ltrim takes off), the unit after it
                            SELECT s.*,
                                left(s.Unsigned, length(s.Unsigned) - length(ltrim(s.Unsigned, '0123456789.,'))) AS NumberText,
                                nullif(btrim(ltrim(s.Unsigned, '0123456789.,')), '') AS UnitText
                            FROM (
                                -- the sign, and the text after it
                                SELECT c.*,
                                    CASE WHEN left(c.Rest, 1) IN ('+', '-') THEN left(c.Rest, 1) ELSE '' END AS Sign,
                                    CASE WHEN left(c.Rest, 1) IN ('+', '-') THEN substr(c.Rest, 2) ELSE c.Rest END AS Unsigned
                                FROM (
                                    -- the comparator, and the text after it
                                    SELECT t.*,
                                        CASE
                                            WHEN left(t.Raw, 2) IN ('<=', '>=') THEN left(t.Raw, 2)
                                            WHEN left(t.Raw, 1) IN ('<', '>') THEN left(t.Raw, 1)
                                        END AS Comparator,
                                        ltrim(substr(t.Raw, CASE
                                            WHEN left(t.Raw, 2) IN ('<=', '>=') THEN 3
                                            WHEN left(t.Raw, 1) IN ('<', '>') THEN 2
                                            ELSE 1
                                        END)) AS Rest
                                    FROM (
                                        -- the picked rows: the trimmed text, the Unit column, the time
                                        -- and which format its shape (every digit a 0) is
                                        SELECT v.ctid AS RowAt,
                                            v.ConversionAttempts,
                                            v.Code,
                                            btrim(replace(coalesce(v.RawValue, ''), chr(160), ' ')) AS Raw,
                                            nullif(btrim(v.Unit), '') AS UnitColumn,
                                            btrim(v.RawTime) AS RawTime,
                                            CASE translate(btrim(v.RawTime), '0123456789', '0000000000')
                                                WHEN '00-00-0000' THEN 1
                                                WHEN '0000-00-00' THEN 2
                                                WHEN '00000000000000+0000' THEN 3
                                                WHEN '00000000000000-0000' THEN 3
                                            END AS TimeFormat
                                        FROM PLSP.Patientvaerdier AS v
                                        -- by ctid alone: a picked row is locked (the dry run's is
                                        -- no longer visible at its ctid once someone changed it)
                                        WHERE v.ctid = ANY (v_At)
                                        OFFSET 0
                                    ) AS t
                                    OFFSET 0
                                ) AS c
                                OFFSET 0
                            ) AS s
                            OFFSET 0
                        ) AS n
                        OFFSET 0
                    ) AS d
                    LEFT JOIN analysis AS a ON a.Code = d.Code
                    LEFT JOIN mapping AS e ON e.Code = d.Code AND e.UnitKey = d.GivenUnit
                    OFFSET 0
                ) AS u
                OFFSET 0
            ) AS f
            OFFSET 0
        ) AS g
    ),
    written AS (
        UPDATE PLSP.Patientvaerdier AS v SET
            ConversionStatus = CASE
                WHEN c.Reason IS NULL THEN 1
                WHEN p_Mode = 'I' AND c.ConversionAttempts + 1 >= p_MaxAttempts THEN 3
                ELSE 2
            END,
            ConversionAttempts = least(c.ConversionAttempts + 1, 32767),
            ReasonCode = c.Reason,
            ValueNumeric = CASE WHEN c.Reason IS NULL THEN c.Value END,
            Comparator = CASE WHEN c.Reason IS NULL THEN c.Comparator END,
            Unit = CASE WHEN c.Reason IS NULL THEN c.CanonicalUnit ELSE v.Unit END,
            MeasuredUtc = CASE WHEN c.Reason IS NULL THEN c.MeasuredUtc END,
            ConvertedUtc = v_Now
        FROM conv AS c
        -- one TID fetch per row (a join on ctid is a parameterised TID scan)
        WHERE p_Execute = 'Y' AND v.ctid = c.RowAt
    )
    SELECT count(*) FILTER (WHERE c.Reason IS NULL),
        count(*) FILTER (WHERE c.Reason IS NOT NULL AND NOT (p_Mode = 'I' AND c.ConversionAttempts + 1 >= p_MaxAttempts)),
        count(*) FILTER (WHERE c.Reason IS NOT NULL AND p_Mode = 'I' AND c.ConversionAttempts + 1 >= p_MaxAttempts),
        string_agg(DISTINCT c.Reason, ' ' ORDER BY c.Reason)
    INTO v_Converted, v_Invalid, v_GivenUp, v_Reasons
    FROM conv AS c;

    p_Rows := coalesce(p_Rows, 0);
    p_Done := p_Rows < p_BatchSize;
    p_Position := coalesce(v_Last, p_Position);
    p_Note := left(concat(
        CASE WHEN p_Execute = 'Y' THEN '' ELSE 'would have: ' END,
        'converted ', v_Converted, ', invalid ', v_Invalid, ', rejected ', v_GivenUp,
        CASE WHEN v_Reasons IS NOT NULL THEN ' (' || v_Reasons || ')' END
    ), 400);
END;
$$;
