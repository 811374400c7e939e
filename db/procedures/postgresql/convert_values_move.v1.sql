-- Job.convert_values_move, version 1.
-- ConvertPatientValues by insert (issue 9, migration 0023; docs/engine.md):
-- moves up to p_BatchSize new values, oldest first, out of
-- PLSP.Patientvaerdier_Pending and INSERTs each into PLSP.Patientvaerdier
-- already converted (status 1) or invalid (status 2, with its ReasonCode), so
-- the row is written once, at the end of the table and its indexes, where an
-- update in place wrote a new row version into the middle of them (never
-- HOT: it changes indexed columns). Rows another session holds are skipped.
--
-- The conversion is version 2's of Job.convert_values_rows, expression for
-- expression (tests/test_convert_values_v3.py checks the results against the
-- released version 1 on every listed raw form and on random text): the rules,
-- the reason codes and the raw forms are listed there. RawValue, RawTime and
-- the Unit column are copied unchanged (the Unit of a converted value is its
-- analysis's canonical unit, as in version 2); ReceivedUtc, UploadKey and
-- ContentHash move with the row; ConversionAttempts is 1. The new row gets
-- its PatientvaerdiId from Patientvaerdier's identity, in arrival order. The
-- INSERT fires the dirty mark of migration 0009 once per batch, for the
-- patients with a value that became usable (status 1).
-- p_Execute = 'N' counts what the batch would do and writes nothing (no locks).
-- Runs with the owner's rights; does not COMMIT (Job.run_batched does).
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine, one a line:
--   * boolean regular expressions where T-SQL compares shapes with LIKE (no LIKE classes here);
--   * make_timestamp behind integer validity checks where T-SQL has TRY_CONVERT (no TRY_ here);
--   * ids picked FOR UPDATE SKIP LOCKED, then DELETE ... RETURNING, where T-SQL has DELETE TOP ... READPAST OUTPUT INTO;
--   * move, convert, insert and count in one data-modifying WITH where T-SQL fills table variables, then inserts.
CREATE PROCEDURE Job.convert_values_move(
    p_BatchSize integer,
    p_Execute char(1),
    INOUT p_Rows integer DEFAULT NULL,
    INOUT p_Note varchar(400) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Now timestamp(3) := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
    v_Ids bigint[];
    v_Converted integer;
    v_Invalid integer;
    v_Reasons text;
BEGIN
    -- PostgreSQL has no READPAST, IMPLICIT_TRANSACTIONS or DEADLOCK_PRIORITY: nothing to set.

    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; no transaction control here.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_BatchSize IS NULL OR p_BatchSize < 1 OR p_BatchSize > 4000 THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (convert) or N (count only). ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    -- The batch: the oldest pending rows by the primary key; a row another
    -- session holds (a conversion, an upload replacing it) is skipped. The dry
    -- run takes no locks.
    IF p_Execute = 'Y' THEN
        SELECT array_agg(b.PendingId), count(*)
        INTO v_Ids, p_Rows
        FROM (
            SELECT p.PendingId
            FROM PLSP.Patientvaerdier_Pending AS p
            ORDER BY p.PendingId
            LIMIT p_BatchSize
            FOR UPDATE OF p SKIP LOCKED
        ) AS b;
    ELSE
        SELECT array_agg(b.PendingId), count(*)
        INTO v_Ids, p_Rows
        FROM (
            SELECT p.PendingId
            FROM PLSP.Patientvaerdier_Pending AS p
            ORDER BY p.PendingId
            LIMIT p_BatchSize
        ) AS b;
    END IF;

    -- Move, convert and insert: one pass over the picked rows.
    WITH moved AS (
        DELETE FROM PLSP.Patientvaerdier_Pending AS p
        WHERE p_Execute = 'Y' AND p.PendingId = ANY (v_Ids)
        RETURNING p.PendingId, p.PatientId, p.Code, p.RawValue, p.RawTime, p.Unit, p.ReceivedUtc, p.UploadKey, p.ContentHash
    ),
    source AS (
        SELECT m.PendingId, m.PatientId, m.Code, m.RawValue, m.RawTime, m.Unit, m.ReceivedUtc, m.UploadKey, m.ContentHash
        FROM moved AS m
        UNION ALL
        -- the dry run reads the rows where they are
        SELECT p.PendingId, p.PatientId, p.Code, p.RawValue, p.RawTime, p.Unit, p.ReceivedUtc, p.UploadKey, p.ContentHash
        FROM PLSP.Patientvaerdier_Pending AS p
        WHERE p_Execute = 'N' AND p.PendingId = ANY (v_Ids)
    ),
    analysis AS (
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
                                        SELECT v.PendingId AS RowAt,
                                            0 AS ConversionAttempts,
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
                                        FROM source AS v
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
        INSERT INTO PLSP.Patientvaerdier (
            PatientId, Code, RawValue, RawTime, ValueNumeric, Comparator, Unit, MeasuredUtc,
            ConversionStatus, ConversionAttempts, ReasonCode, ReceivedUtc, ConvertedUtc, UploadKey, ContentHash
        )
        SELECT s.PatientId, s.Code, s.RawValue, s.RawTime,
            CASE WHEN c.Reason IS NULL THEN c.Value END,
            CASE WHEN c.Reason IS NULL THEN c.Comparator END,
            CASE WHEN c.Reason IS NULL THEN c.CanonicalUnit ELSE s.Unit END,
            CASE WHEN c.Reason IS NULL THEN c.MeasuredUtc END,
            CASE WHEN c.Reason IS NULL THEN 1 ELSE 2 END,
            1,
            c.Reason,
            s.ReceivedUtc,
            v_Now,
            s.UploadKey,
            s.ContentHash
        FROM source AS s
        INNER JOIN conv AS c ON c.RowAt = s.PendingId
        WHERE p_Execute = 'Y'
        -- ids in arrival order
        ORDER BY s.PendingId
    )
    SELECT count(*) FILTER (WHERE c.Reason IS NULL),
        count(*) FILTER (WHERE c.Reason IS NOT NULL),
        string_agg(DISTINCT c.Reason, ' ' ORDER BY c.Reason)
    INTO v_Converted, v_Invalid, v_Reasons
    FROM conv AS c;

    p_Rows := coalesce(p_Rows, 0);
    p_Note := left(concat(
        CASE WHEN p_Execute = 'Y' THEN '' ELSE 'would have: ' END,
        'converted ', v_Converted, ', invalid ', v_Invalid, ', rejected 0',
        CASE WHEN v_Reasons IS NOT NULL THEN ' (' || v_Reasons || ')' END
    ), 400);
END;
$$;
