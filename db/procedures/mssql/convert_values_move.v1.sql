-- Job.convert_values_move, version 1.
-- ConvertPatientValues by insert (issue 9, migration 0023; docs/engine.md):
-- moves up to @BatchSize new values, oldest first, out of
-- PLSP.Patientvaerdier_Pending and INSERTs each into PLSP.Patientvaerdier
-- already converted (status 1) or invalid (status 2, with its ReasonCode), so
-- the row is written once, appended to the clustered index and its other
-- indexes, where an update in place rewrote it in the middle of them (every
-- such update changes indexed columns). Rows another session holds are skipped.
--
-- The conversion is version 2's of Job.convert_values_rows, expression for
-- expression (its twin is checked against the released version 1 by
-- tests/test_convert_values_v3.py): the rules, the reason codes and the raw
-- forms are listed there. RawValue, RawTime and the Unit column are copied
-- unchanged (the Unit of a converted value is its analysis's canonical unit,
-- as in version 2); ReceivedUtc, UploadKey and ContentHash move with the row;
-- ConversionAttempts is 1. The new row gets its PatientvaerdiId from the
-- IDENTITY of Patientvaerdier, in arrival order. The INSERT fires the dirty
-- mark of migration 0009 (TR_Patientvaerdier_Dirty) once per batch, for the
-- patients with a value that became usable (status 1).
-- @Execute = 'N' counts what the batch would do and writes nothing.
-- One short transaction: the DELETE and the INSERT commit together, so a
-- value is always in exactly one of the two tables (@BatchSize at most
-- 4,000: under lock escalation).
--
-- Differences from the PostgreSQL twin, forced by the engine, one a line:
--   * shapes and LIKE patterns where PostgreSQL has boolean regular expressions (no regex in T-SQL);
--   * TRY_CONVERT for dates where PostgreSQL checks the parts before make_timestamp;
--   * DELETE of the oldest TOP rows WITH (READPAST) OUTPUT INTO a table variable where PostgreSQL picks ids FOR UPDATE SKIP LOCKED, then DELETE ... RETURNING;
--   * convert into a table variable, then one INSERT, where PostgreSQL inserts in a data-modifying WITH;
--   * Danish time is 'Romance Standard Time' (Windows' name for Europe/Copenhagen).
CREATE OR ALTER PROCEDURE Job.convert_values_move
    @BatchSize int,
    @Execute char(1),
    @Rows int = NULL OUTPUT,
    @Note nvarchar(400) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;  -- READPAST needs READ COMMITTED (error 650 otherwise); reverts on return
    IF @@LOCK_TIMEOUT < 0
        SET LOCK_TIMEOUT 1000;  -- called on its own: never wait forever; reverts on return

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();
    DECLARE @Converted int;
    DECLARE @Invalid int;
    DECLARE @Reasons nvarchar(200);
    DECLARE @Moved TABLE (
        PendingId bigint NOT NULL PRIMARY KEY,
        PatientId bigint NOT NULL,
        Code varchar(20) NOT NULL,
        RawValue nvarchar(100) NULL,
        RawTime varchar(40) NULL,
        Unit nvarchar(20) NULL,
        ReceivedUtc datetime2(3) NOT NULL,
        UploadKey nvarchar(200) NULL,
        ContentHash binary(32) NULL
    );
    DECLARE @Result TABLE (
        PendingId bigint NOT NULL PRIMARY KEY,
        ConversionAttempts smallint NOT NULL,
        Reason varchar(20) NULL,
        Value decimal(18, 4) NULL,
        Comparator varchar(2) NULL,
        CanonicalUnit nvarchar(20) NULL,
        MeasuredUtc datetime2(3) NULL
    );

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.convert_values_move must not run inside a transaction: it commits its own short transaction. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4000
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (convert) or N (count only). ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    BEGIN TRY
        BEGIN TRANSACTION;

        -- The batch: the oldest pending rows by the clustered key, moved out in
        -- one DELETE; a row another session holds (a conversion, an upload
        -- replacing it) is skipped. The dry run reads them where they are.
        IF @Execute = 'Y'
        BEGIN
            WITH oldest AS (
                SELECT TOP (@BatchSize)
                    p.PendingId,
                    p.PatientId,
                    p.Code,
                    p.RawValue,
                    p.RawTime,
                    p.Unit,
                    p.ReceivedUtc,
                    p.UploadKey,
                    p.ContentHash
                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                FROM PLSP.Patientvaerdier_Pending AS p WITH (ROWLOCK, READPAST, READCOMMITTEDLOCK)
                ORDER BY p.PendingId
            )

            DELETE FROM oldest
            OUTPUT
                deleted.PendingId,
                deleted.PatientId,
                deleted.Code,
                deleted.RawValue,
                deleted.RawTime,
                deleted.Unit,
                deleted.ReceivedUtc,
                deleted.UploadKey,
                deleted.ContentHash
            INTO @Moved (PendingId, PatientId, Code, RawValue, RawTime, Unit, ReceivedUtc, UploadKey, ContentHash);
        END;
        ELSE
            INSERT INTO @Moved (PendingId, PatientId, Code, RawValue, RawTime, Unit, ReceivedUtc, UploadKey, ContentHash)
            SELECT TOP (@BatchSize)
                p.PendingId,
                p.PatientId,
                p.Code,
                p.RawValue,
                p.RawTime,
                p.Unit,
                p.ReceivedUtc,
                p.UploadKey,
                p.ContentHash
            -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
            FROM PLSP.Patientvaerdier_Pending AS p WITH (READCOMMITTEDLOCK, READPAST)
            ORDER BY p.PendingId;

        -- Convert: one pass over the moved rows. Each step names what it reads
        -- (the optimizer inlines the steps: one scan, one Compute Scalar chain).
        WITH analysis AS (
            -- The newest active row per code.
            SELECT
                r.Code,
                r.Unit,
                r.DataType,
                r.MinValue,
                r.MaxValue,
                LOWER(r.Unit) AS UnitKey,
                ROW_NUMBER() OVER (PARTITION BY r.Code ORDER BY r.ActiveFromUtc DESC) AS Pick
            FROM PLSP.RelevantVaerdi AS r
            WHERE r.ActiveFromUtc <= @Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > @Now)
        ),

        mapping AS (
            -- The newest active mapping per code and unit (units compare without case).
            SELECT
                u.Code,
                u.AddBefore,
                u.MultiplyBy,
                LOWER(u.Unit) AS UnitKey,
                ROW_NUMBER() OVER (PARTITION BY u.Code, LOWER(u.Unit) ORDER BY u.ActiveFromUtc DESC) AS Pick
            FROM PLSP.RelevantVaerdiEnhed AS u
            WHERE u.ActiveFromUtc <= @Now AND (u.ActiveToUtc IS NULL OR u.ActiveToUtc > @Now)
        ),

        cleaned AS (
            -- the moved rows: the trimmed text, the Unit column, the time
            SELECT
                v.PendingId,
                CAST(0 AS smallint) AS ConversionAttempts,
                v.Code,
                LTRIM(RTRIM(REPLACE(COALESCE(v.RawValue, N''), NCHAR(160), N' '))) AS Raw,
                NULLIF(LTRIM(RTRIM(v.Unit)), N'') AS UnitColumn,
                LTRIM(RTRIM(v.RawTime)) AS RawTime
            FROM @Moved AS v
        ),

        compared AS (
            -- the comparator, and the text after it
            SELECT
                t.*,
                CASE
                    WHEN LEFT(t.Raw, 2) IN (N'<=', N'>=') THEN CAST(LEFT(t.Raw, 2) AS varchar(2))
                    WHEN LEFT(t.Raw, 1) IN (N'<', N'>') THEN CAST(LEFT(t.Raw, 1) AS varchar(2))
                END AS Comparator,
                LTRIM(SUBSTRING(t.Raw, CASE
                    WHEN LEFT(t.Raw, 2) IN (N'<=', N'>=') THEN 3
                    WHEN LEFT(t.Raw, 1) IN (N'<', N'>') THEN 2
                    ELSE 1
                END, 100)) AS Rest
            FROM cleaned AS t
        ),

        signed AS (
            -- the sign, the text after it, and the length of its leading run of digits and separators
            SELECT
                c.*,
                CASE WHEN LEFT(c.Rest, 1) IN (N'+', N'-') THEN LEFT(c.Rest, 1) ELSE N'' END AS Sign,
                CASE WHEN LEFT(c.Rest, 1) IN (N'+', N'-') THEN SUBSTRING(c.Rest, 2, 100) ELSE c.Rest END AS Unsigned,
                PATINDEX(
                    N'%[^0-9.,]%', CASE WHEN LEFT(c.Rest, 1) IN (N'+', N'-') THEN SUBSTRING(c.Rest, 2, 100) ELSE c.Rest END + N'x'
                ) - 1 AS NumberLength
            FROM compared AS c
        ),

        lexed AS (
            -- the number text, its shape (every digit a 9), and the unit after it
            SELECT
                s.*,
                LEFT(s.Unsigned, s.NumberLength) AS NumberText,
                TRANSLATE(LEFT(s.Unsigned, s.NumberLength), N'0123456789', N'9999999999') AS Shape,
                NULLIF(LTRIM(SUBSTRING(s.Unsigned, s.NumberLength + 1, 100)), N'') AS UnitText
            FROM signed AS s
        ),

        shaped AS (
            -- where the last separator is, and whether the text reads as a number at all
            SELECT
                n.*,
                CASE WHEN n.Shape LIKE N'%[.,]%' THEN LEN(n.Shape) - PATINDEX(N'%[.,]%', REVERSE(n.Shape)) + 1 END AS LastSepAt,
                CASE
                    WHEN n.UnitText LIKE N'%[0-9]%' OR n.UnitText LIKE N'[+-]%' THEN 0
                    WHEN n.NumberText = N'' OR LEN(n.NumberText) > 20 OR LEFT(n.NumberText, 1) IN (N'.', N',') THEN 0
                    ELSE 1
                END AS Lexed
            FROM lexed AS n
        ),

        readings AS (
            -- the first reading (a separator is a decimal mark where it can be), the second
            -- (a lone separator before three digits groups thousands), the given unit, the time as UTC
            SELECT
                q.PendingId,
                q.ConversionAttempts,
                q.Code,
                q.Raw,
                q.Comparator,
                CASE
                    WHEN q.Lexed = 0 THEN NULL
                    -- an integer
                    WHEN q.LastSepAt IS NULL THEN q.Sign + q.NumberText
                    -- one separator: the decimal mark
                    WHEN q.Shape LIKE N'9%9' AND LEFT(q.Shape, q.LastSepAt - 1) NOT LIKE N'%[^9]%'
                        THEN q.Sign + REPLACE(q.NumberText, N',', N'.')
                    -- both: the last one is the decimal mark, the other groups thousands
                    WHEN q.Shape LIKE N'%.%' AND q.Shape LIKE N'%,%' AND q.NumberText NOT LIKE N'0%'
                        AND q.Shape LIKE N'%9'
                        AND SUBSTRING(q.Shape, q.LastSepAt + 1, 100) NOT LIKE N'%[^9]%'
                        AND LEFT(q.Shape, q.LastSepAt - 1) IN (
                            N'9.999', N'99.999', N'999.999', N'9.999.999', N'99.999.999', N'999.999.999',
                            N'9.999.999.999', N'99.999.999.999', N'999.999.999.999',
                            N'9,999', N'99,999', N'999,999', N'9,999,999', N'99,999,999', N'999,999,999',
                            N'9,999,999,999', N'99,999,999,999', N'999,999,999,999'
                        )
                        THEN q.Sign + REPLACE(REPLACE(LEFT(q.NumberText, q.LastSepAt - 1), N'.', N''), N',', N'')
                        + N'.' + SUBSTRING(q.NumberText, q.LastSepAt + 1, 100)
                    -- one kind, twice or more: thousands groups only
                    WHEN q.NumberText NOT LIKE N'0%' AND q.Shape IN (
                        N'9.999.999', N'99.999.999', N'999.999.999',
                        N'9.999.999.999', N'99.999.999.999', N'999.999.999.999',
                        N'9,999,999', N'99,999,999', N'999,999,999',
                        N'9,999,999,999', N'99,999,999,999', N'999,999,999,999'
                    )
                        THEN q.Sign + REPLACE(REPLACE(q.NumberText, N'.', N''), N',', N'')
                END AS FirstText,
                CASE
                    WHEN q.Lexed = 1 AND q.NumberText NOT LIKE N'0%'
                        AND q.Shape IN (N'9.999', N'99.999', N'999.999', N'9,999', N'99,999', N'999,999')
                        THEN q.Sign + REPLACE(REPLACE(q.NumberText, N'.', N''), N',', N'')
                END AS SecondText,
                LOWER(COALESCE(q.UnitText, q.UnitColumn)) AS GivenUnit,
                CASE
                    WHEN q.RawTime LIKE '[0-9][0-9]-[0-9][0-9]-[0-9][0-9][0-9][0-9]'
                        THEN CAST(
                            TRY_CONVERT(datetime2(3), q.RawTime, 105) AT TIME ZONE 'Romance Standard Time' AT TIME ZONE 'UTC'
                            AS datetime2(3)
                        )
                    WHEN q.RawTime LIKE '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
                        THEN CAST(
                            TRY_CONVERT(datetime2(3), q.RawTime, 23) AT TIME ZONE 'Romance Standard Time' AT TIME ZONE 'UTC'
                            AS datetime2(3)
                        )
                    WHEN q.RawTime LIKE '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][+-][0-9][0-9][0-9][0-9]'
                        THEN CAST(SWITCHOFFSET(TRY_CONVERT(
                            datetimeoffset(3),
                            CONCAT(
                                SUBSTRING(q.RawTime, 1, 4), '-', SUBSTRING(q.RawTime, 5, 2), '-', SUBSTRING(q.RawTime, 7, 2),
                                'T', SUBSTRING(q.RawTime, 9, 2), ':', SUBSTRING(q.RawTime, 11, 2), ':',
                                SUBSTRING(q.RawTime, 13, 2), SUBSTRING(q.RawTime, 15, 3), ':', SUBSTRING(q.RawTime, 18, 2)
                            ),
                            127
                        ), '+00:00') AS datetime2(3))
                END AS MeasuredUtc
            FROM shaped AS q
        ),

        ruled AS (
            -- the rules, joined once: the analysis, then the mapping of the given unit
            SELECT
                x.*,
                a.Code AS RuleCode,
                a.Unit AS CanonicalUnit,
                a.DataType,
                a.MinValue,
                a.MaxValue,
                CASE WHEN x.GivenUnit IS NULL OR x.GivenUnit = a.UnitKey THEN 0 ELSE e.AddBefore END AS AddBefore,
                CASE WHEN x.GivenUnit IS NULL OR x.GivenUnit = a.UnitKey THEN 1 ELSE e.MultiplyBy END AS MultiplyBy
            FROM readings AS x
            LEFT JOIN analysis AS a ON x.Code = a.Code AND a.Pick = 1
            LEFT JOIN mapping AS e ON x.Code = e.Code AND x.GivenUnit = e.UnitKey AND e.Pick = 1
        ),

        valued AS (
            -- the readings in the canonical unit
            SELECT
                k.*,
                ROUND((TRY_CAST(k.FirstText AS decimal(38, 10)) + k.AddBefore) * k.MultiplyBy, 4) AS FirstValue,
                ROUND((TRY_CAST(k.SecondText AS decimal(38, 10)) + k.AddBefore) * k.MultiplyBy, 4) AS SecondValue
            FROM ruled AS k
        ),

        fitted AS (
            -- whether each reading is plausible
            SELECT
                w.*,
                CASE
                    WHEN w.FirstValue >= COALESCE(w.MinValue, -99999999999999) AND w.FirstValue <= COALESCE(w.MaxValue, 99999999999999)
                        THEN 1
                    ELSE 0
                END AS FirstFits,
                CASE
                    WHEN w.SecondValue >= COALESCE(w.MinValue, -99999999999999) AND w.SecondValue <= COALESCE(w.MaxValue, 99999999999999)
                        THEN 1
                    ELSE 0
                END AS SecondFits
            FROM valued AS w
        )

        INSERT INTO @Result (PendingId, ConversionAttempts, Reason, Value, Comparator, CanonicalUnit, MeasuredUtc)
        SELECT
            f.PendingId,
            f.ConversionAttempts,
            CASE
                WHEN f.RuleCode IS NULL THEN 'unknown_analysis'
                WHEN f.Raw = N'' THEN 'empty'
                WHEN f.DataType = 'text' THEN NULL
                WHEN f.FirstText IS NULL THEN 'not_a_number'
                WHEN f.MultiplyBy IS NULL THEN 'unknown_unit'
                WHEN f.FirstFits = 1 AND f.SecondFits = 1 THEN 'ambiguous'
                WHEN f.FirstFits = 0 AND f.SecondFits = 0 THEN 'out_of_range'
                WHEN f.MeasuredUtc IS NULL OR f.MeasuredUtc < '1900-01-01' THEN 'bad_time'
            END,
            CASE
                WHEN f.DataType = 'text' THEN NULL
                WHEN f.FirstFits = 1 THEN f.FirstValue
                WHEN f.SecondFits = 1 THEN f.SecondValue
            END,
            f.Comparator,
            f.CanonicalUnit,
            f.MeasuredUtc
        FROM fitted AS f;

        -- Write: one INSERT, ids in arrival order.
        IF @Execute = 'Y'
            INSERT INTO PLSP.Patientvaerdier (
                PatientId,
                Code,
                RawValue,
                RawTime,
                ValueNumeric,
                Comparator,
                Unit,
                MeasuredUtc,
                ConversionStatus,
                ConversionAttempts,
                ReasonCode,
                ReceivedUtc,
                ConvertedUtc,
                UploadKey,
                ContentHash
            )
            SELECT
                m.PatientId,
                m.Code,
                m.RawValue,
                m.RawTime,
                CASE WHEN r.Reason IS NULL THEN r.Value END,
                CASE WHEN r.Reason IS NULL THEN r.Comparator END,
                CASE WHEN r.Reason IS NULL THEN r.CanonicalUnit ELSE m.Unit END,
                CASE WHEN r.Reason IS NULL THEN r.MeasuredUtc END,
                CASE WHEN r.Reason IS NULL THEN 1 ELSE 2 END,
                1,
                r.Reason,
                m.ReceivedUtc,
                @Now,
                m.UploadKey,
                m.ContentHash
            FROM @Moved AS m
            INNER JOIN @Result AS r ON m.PendingId = r.PendingId
            ORDER BY m.PendingId;

        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;

    SELECT
        @Rows = COUNT(*),
        @Converted = COALESCE(SUM(CASE WHEN r.Reason IS NULL THEN 1 ELSE 0 END), 0),
        @Invalid = COALESCE(SUM(CASE WHEN r.Reason IS NOT NULL THEN 1 ELSE 0 END), 0)
    FROM @Result AS r;

    SELECT @Reasons = STRING_AGG(CAST(d.Reason AS nvarchar(20)), N' ') WITHIN GROUP (ORDER BY d.Reason)
    FROM (SELECT DISTINCT r.Reason FROM @Result AS r WHERE r.Reason IS NOT NULL) AS d;

    SET @Note = LEFT(CONCAT(
        CASE WHEN @Execute = 'Y' THEN N'' ELSE N'would have: ' END,
        N'converted ', @Converted, N', invalid ', @Invalid, N', rejected 0',
        N' (' + @Reasons + N')'
    ), 400);
END;
