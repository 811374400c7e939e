-- Job.convert_values_rows, version 1.
-- The conversion both value jobs share (docs/engine.md): one set-based pass
-- over up to @BatchSize rows of PLSP.Patientvaerdier with the given status,
-- in PatientvaerdiId order from @Position, turning the raw text into a typed
-- value in the analysis's canonical unit. @Mode 'N' converts new values
-- (status 0, Job.convert_values_batch); 'I' retries invalid ones (status 2,
-- Job.convert_invalid_values_batch) and gives a value up (status 3) when its
-- attempts reach @MaxAttempts.
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
-- @Execute = 'N' counts what the batch would do and writes nothing.
--
-- The text is read by its shape: TRANSLATE turns every digit into 9, so
-- '1.234,5' has the shape '9.999,9' and the grouping rules are comparisons
-- of shapes (SQL Server 2017 or later); TRY_CONVERT reads numbers and dates
-- without ever raising. The rows are taken with UPDLOCK, READPAST in one
-- short transaction (@BatchSize at most 4,000: under lock escalation).
--
-- Differences from the PostgreSQL twin, forced by the engine: shapes, LIKE and
-- TRY_CONVERT instead of regular expressions; READPAST instead of FOR UPDATE
-- SKIP LOCKED; a table variable instead of a temporary table; Danish time is
-- 'Romance Standard Time' (Windows' name for Europe/Copenhagen).
CREATE OR ALTER PROCEDURE Job.convert_values_rows
    @Mode char(1),
    @BatchSize int,
    @Execute char(1),
    @MaxAttempts int,
    @Position bigint = NULL OUTPUT,
    @Rows int = NULL OUTPUT,
    @Done bit = NULL OUTPUT,
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
    DECLARE @Status tinyint;
    DECLARE @Converted int;
    DECLARE @Invalid int;
    DECLARE @GivenUp int;
    DECLARE @Last bigint;
    DECLARE @Reasons nvarchar(200);
    DECLARE @Picked TABLE (PatientvaerdiId bigint NOT NULL PRIMARY KEY);
    DECLARE @Result TABLE (
        PatientvaerdiId bigint NOT NULL PRIMARY KEY,
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
        SET @Errors += N'Job.convert_values_rows must not run inside a transaction: it commits its own short transaction. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @Mode IS NULL OR @Mode NOT IN ('N', 'I')
        SET @Errors += N'The value for the parameter @Mode is not supported: use N (new values) or I (invalid values). ';
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4000
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (convert) or N (count only). ';
    IF @Mode = 'I' AND (@MaxAttempts IS NULL OR @MaxAttempts < 1 OR @MaxAttempts > 1000)
        SET @Errors += N'The value for the parameter @MaxAttempts is not supported: give 1 to 1000 attempts for invalid values. ';
    IF @Position < 0
        SET @Errors += N'The value for the parameter @Position is not supported: give NULL or the last PatientvaerdiId handled. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    SET @Status = CASE @Mode WHEN 'N' THEN 0 ELSE 2 END;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    BEGIN TRY
        BEGIN TRANSACTION;

        -- The batch's rows from the filtered index IX_Patientvaerdier_Unconverted
        -- (the literal IN (0, 2) lets a parameterised plan match its filter).
        IF @Execute = 'Y'
            INSERT INTO @Picked (PatientvaerdiId)
            SELECT TOP (@BatchSize) v.PatientvaerdiId
            -- READPAST needs a locking read: UPDLOCK (RCSI databases raise error 650 otherwise).
            FROM PLSP.Patientvaerdier AS v WITH (ROWLOCK, UPDLOCK, READPAST)
            WHERE
                v.ConversionStatus IN (0, 2) AND v.ConversionStatus = @Status
                AND v.PatientvaerdiId > COALESCE(@Position, 0)
            ORDER BY v.PatientvaerdiId;
        ELSE
            INSERT INTO @Picked (PatientvaerdiId)
            SELECT TOP (@BatchSize) v.PatientvaerdiId
            -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
            FROM PLSP.Patientvaerdier AS v WITH (READCOMMITTEDLOCK, READPAST)
            WHERE
                v.ConversionStatus IN (0, 2) AND v.ConversionStatus = @Status
                AND v.PatientvaerdiId > COALESCE(@Position, 0)
            ORDER BY v.PatientvaerdiId;

        WITH analysis AS (
            -- The newest active row per code.
            SELECT
                r.Code,
                r.Unit,
                r.DataType,
                r.MinValue,
                r.MaxValue,
                ROW_NUMBER() OVER (PARTITION BY r.Code ORDER BY r.ActiveFromUtc DESC) AS Pick
            FROM PLSP.RelevantVaerdi AS r
            WHERE r.ActiveFromUtc <= @Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > @Now)
        ),

        src AS (
            SELECT
                v.PatientvaerdiId,
                v.Code,
                v.ConversionAttempts,
                a.Code AS RuleCode,
                a.Unit AS CanonicalUnit,
                a.DataType,
                a.MinValue,
                a.MaxValue,
                LTRIM(RTRIM(REPLACE(COALESCE(v.RawValue, N''), NCHAR(160), N' '))) AS Raw,
                NULLIF(LTRIM(RTRIM(v.Unit)), N'') AS UnitColumn,
                LTRIM(RTRIM(v.RawTime)) AS RawTime
            FROM @Picked AS p
            INNER JOIN PLSP.Patientvaerdier AS v ON p.PatientvaerdiId = v.PatientvaerdiId
            LEFT JOIN analysis AS a ON v.Code = a.Code AND a.Pick = 1
        ),

        compared AS (
            SELECT
                s.*,
                CASE
                    WHEN LEFT(s.Raw, 2) IN (N'<=', N'>=') THEN CAST(LEFT(s.Raw, 2) AS varchar(2))
                    WHEN LEFT(s.Raw, 1) IN (N'<', N'>') THEN CAST(LEFT(s.Raw, 1) AS varchar(2))
                END AS Comparator
            FROM src AS s
        ),

        rested AS (
            SELECT
                c.*,
                LTRIM(SUBSTRING(c.Raw, LEN(COALESCE(c.Comparator, '')) + 1, 100)) AS Rest
            FROM compared AS c
        ),

        signed AS (
            SELECT
                r.*,
                CASE WHEN LEFT(r.Rest, 1) IN (N'+', N'-') THEN LEFT(r.Rest, 1) ELSE N'' END AS Sign,
                CASE WHEN LEFT(r.Rest, 1) IN (N'+', N'-') THEN SUBSTRING(r.Rest, 2, 100) ELSE r.Rest END AS Unsigned
            FROM rested AS r
        ),

        measured AS (
            SELECT
                n.*,
                PATINDEX(N'%[^0-9.,]%', n.Unsigned + N'x') - 1 AS NumberLength
            FROM signed AS n
        ),

        lexed AS (
            SELECT
                k.*,
                LEFT(k.Unsigned, k.NumberLength) AS NumberText,
                NULLIF(LTRIM(SUBSTRING(k.Unsigned, k.NumberLength + 1, 100)), N'') AS UnitText
            FROM measured AS k
        ),

        counted AS (
            SELECT
                l.*,
                TRANSLATE(l.NumberText, N'0123456789', N'9999999999') AS Shape,
                LEN(l.NumberText) - LEN(REPLACE(l.NumberText, N'.', N'')) AS Dots,
                LEN(l.NumberText) - LEN(REPLACE(l.NumberText, N',', N'')) AS Commas
            FROM lexed AS l
        ),

        shaped AS (
            SELECT
                h.*,
                CASE WHEN h.Dots + h.Commas > 0 THEN LEN(h.Shape) - PATINDEX(N'%[.,]%', REVERSE(h.Shape)) + 1 END AS LastSepAt
            FROM counted AS h
        ),

        parts AS (
            SELECT
                s.*,
                LEFT(s.NumberText, s.LastSepAt - 1) AS IntPart,
                SUBSTRING(s.NumberText, s.LastSepAt + 1, 100) AS FracPart,
                SUBSTRING(s.NumberText, s.LastSepAt, 1) AS LastSep,
                LEFT(s.Shape, s.LastSepAt - 1) AS IntShape,
                SUBSTRING(s.Shape, s.LastSepAt + 1, 100) AS FracShape,
                CASE
                    WHEN s.UnitText LIKE N'%[0-9]%' COLLATE Latin1_General_BIN2 OR s.UnitText LIKE N'[+-]%' THEN 0
                    WHEN s.NumberText = N'' OR LEN(s.NumberText) > 20 OR LEFT(s.NumberText, 1) NOT LIKE N'[0-9]' COLLATE Latin1_General_BIN2 THEN 0
                    ELSE 1
                END AS Lexed
            FROM shaped AS s
        ),

        readings AS (
            SELECT
                p.*,
                CASE
                    WHEN p.Lexed = 0 THEN NULL
                    -- an integer
                    WHEN p.Dots + p.Commas = 0 THEN p.Sign + p.NumberText
                    -- one separator: the decimal mark
                    WHEN p.Dots + p.Commas = 1 AND p.IntShape NOT LIKE N'%[^9]%' COLLATE Latin1_General_BIN2 AND p.FracShape LIKE N'9%'
                        AND p.FracShape NOT LIKE N'%[^9]%' COLLATE Latin1_General_BIN2
                        THEN p.Sign + REPLACE(p.NumberText, N',', N'.')
                    -- both: the last one is the decimal mark, the other groups thousands
                    WHEN p.Dots > 0 AND p.Commas > 0
                        AND (p.LastSep = N',' AND p.Commas = 1 OR p.LastSep = N'.' AND p.Dots = 1)
                        AND REPLACE(p.IntShape, N',', N'.') IN (
                            N'9.999', N'99.999', N'999.999', N'9.999.999', N'99.999.999', N'999.999.999',
                            N'9.999.999.999', N'99.999.999.999', N'999.999.999.999'
                        )
                        AND p.NumberText NOT LIKE N'0%'
                        AND p.FracShape LIKE N'9%' AND p.FracShape NOT LIKE N'%[^9]%' COLLATE Latin1_General_BIN2
                        THEN p.Sign + REPLACE(REPLACE(p.IntPart, N'.', N''), N',', N'') + N'.' + p.FracPart
                    -- one kind, twice or more: thousands groups only
                    WHEN (p.Dots = 0 OR p.Commas = 0) AND p.Dots + p.Commas >= 2
                        AND REPLACE(p.Shape, N',', N'.') IN (
                            N'9.999.999', N'99.999.999', N'999.999.999',
                            N'9.999.999.999', N'99.999.999.999', N'999.999.999.999'
                        )
                        AND p.NumberText NOT LIKE N'0%'
                        THEN p.Sign + REPLACE(REPLACE(p.NumberText, N'.', N''), N',', N'')
                END AS FirstText,
                CASE
                    WHEN p.Lexed = 1 AND REPLACE(p.Shape, N',', N'.') IN (N'9.999', N'99.999', N'999.999')
                        AND p.NumberText NOT LIKE N'0%'
                        THEN p.Sign + REPLACE(REPLACE(p.NumberText, N'.', N''), N',', N'')
                END AS SecondText,
                COALESCE(p.UnitText, p.UnitColumn, p.CanonicalUnit) AS GivenUnit
            FROM parts AS p
        ),

        units AS (
            SELECT
                r.*,
                CASE WHEN LOWER(r.GivenUnit) = LOWER(r.CanonicalUnit) THEN 0 ELSE e.AddBefore END AS AddBefore,
                CASE WHEN LOWER(r.GivenUnit) = LOWER(r.CanonicalUnit) THEN 1 ELSE e.MultiplyBy END AS MultiplyBy
            FROM readings AS r
            OUTER APPLY (
                SELECT TOP (1)
                    u.AddBefore,
                    u.MultiplyBy
                FROM PLSP.RelevantVaerdiEnhed AS u
                WHERE
                    u.Code = r.Code AND LOWER(u.Unit) = LOWER(r.GivenUnit)
                    AND u.ActiveFromUtc <= @Now AND (u.ActiveToUtc IS NULL OR u.ActiveToUtc > @Now)
                ORDER BY u.ActiveFromUtc DESC
            ) AS e
        ),

        valued AS (
            SELECT
                u.*,
                ROUND((TRY_CAST(u.FirstText AS decimal(38, 10)) + u.AddBefore) * u.MultiplyBy, 4) AS FirstValue,
                ROUND((TRY_CAST(u.SecondText AS decimal(38, 10)) + u.AddBefore) * u.MultiplyBy, 4) AS SecondValue,
                CASE
                    WHEN u.RawTime LIKE '[0-9][0-9]-[0-9][0-9]-[0-9][0-9][0-9][0-9]' COLLATE Latin1_General_BIN2
                        THEN CAST(
                            TRY_CONVERT(datetime2(3), u.RawTime, 105) AT TIME ZONE 'Romance Standard Time' AT TIME ZONE 'UTC'
                            AS datetime2(3)
                        )
                    WHEN u.RawTime LIKE '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' COLLATE Latin1_General_BIN2
                        THEN CAST(
                            TRY_CONVERT(datetime2(3), u.RawTime, 23) AT TIME ZONE 'Romance Standard Time' AT TIME ZONE 'UTC'
                            AS datetime2(3)
                        )
                    WHEN u.RawTime COLLATE Latin1_General_BIN2
                        LIKE '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][+-][0-9][0-9][0-9][0-9]'
                        THEN CAST(SWITCHOFFSET(TRY_CONVERT(
                            datetimeoffset(3),
                            CONCAT(
                                SUBSTRING(u.RawTime, 1, 4), '-', SUBSTRING(u.RawTime, 5, 2), '-', SUBSTRING(u.RawTime, 7, 2),
                                'T', SUBSTRING(u.RawTime, 9, 2), ':', SUBSTRING(u.RawTime, 11, 2), ':',
                                SUBSTRING(u.RawTime, 13, 2), SUBSTRING(u.RawTime, 15, 3), ':', SUBSTRING(u.RawTime, 18, 2)
                            ),
                            127
                        ), '+00:00') AS datetime2(3))
                END AS MeasuredUtc
            FROM units AS u
        ),

        fitted AS (
            SELECT
                x.*,
                CASE
                    WHEN
                        x.FirstValue >= COALESCE(x.MinValue, -99999999999999)
                        AND x.FirstValue <= COALESCE(x.MaxValue, 99999999999999)
                        THEN 1
                    ELSE 0
                END AS FirstFits,
                CASE
                    WHEN
                        x.SecondValue >= COALESCE(x.MinValue, -99999999999999)
                        AND x.SecondValue <= COALESCE(x.MaxValue, 99999999999999)
                        THEN 1
                    ELSE 0
                END AS SecondFits
            FROM valued AS x
        )

        INSERT INTO @Result (PatientvaerdiId, ConversionAttempts, Reason, Value, Comparator, CanonicalUnit, MeasuredUtc)
        SELECT
            f.PatientvaerdiId,
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

        IF @Execute = 'Y'
            UPDATE v
            SET
                v.ConversionStatus = CASE
                    WHEN r.Reason IS NULL THEN 1
                    WHEN @Mode = 'I' AND r.ConversionAttempts + 1 >= @MaxAttempts THEN 3
                    ELSE 2
                END,
                v.ConversionAttempts = CASE WHEN r.ConversionAttempts < 32767 THEN r.ConversionAttempts + 1 ELSE 32767 END,
                v.ReasonCode = r.Reason,
                v.ValueNumeric = CASE WHEN r.Reason IS NULL THEN r.Value END,
                v.Comparator = CASE WHEN r.Reason IS NULL THEN r.Comparator END,
                v.Unit = CASE WHEN r.Reason IS NULL THEN r.CanonicalUnit ELSE v.Unit END,
                v.MeasuredUtc = CASE WHEN r.Reason IS NULL THEN r.MeasuredUtc END,
                v.ConvertedUtc = @Now
            FROM PLSP.Patientvaerdier AS v
            INNER JOIN @Result AS r ON v.PatientvaerdiId = r.PatientvaerdiId;

        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;

    SELECT
        @Converted = COALESCE(SUM(CASE WHEN r.Reason IS NULL THEN 1 ELSE 0 END), 0),
        @Invalid = COALESCE(SUM(
            CASE WHEN r.Reason IS NOT NULL AND NOT (@Mode = 'I' AND r.ConversionAttempts + 1 >= @MaxAttempts) THEN 1 ELSE 0 END
        ), 0),
        @GivenUp = COALESCE(SUM(
            CASE WHEN r.Reason IS NOT NULL AND @Mode = 'I' AND r.ConversionAttempts + 1 >= @MaxAttempts THEN 1 ELSE 0 END
        ), 0)
    FROM @Result AS r;

    SELECT @Reasons = STRING_AGG(CAST(d.Reason AS nvarchar(20)), N' ') WITHIN GROUP (ORDER BY d.Reason)
    FROM (SELECT DISTINCT r.Reason FROM @Result AS r WHERE r.Reason IS NOT NULL) AS d;

    SELECT @Rows = COUNT(*), @Last = MAX(p.PatientvaerdiId)
    FROM @Picked AS p;

    SET @Done = CASE WHEN @Rows < @BatchSize THEN 1 ELSE 0 END;
    SET @Position = COALESCE(@Last, @Position);
    SET @Note = LEFT(CONCAT(
        CASE WHEN @Execute = 'Y' THEN N'' ELSE N'would have: ' END,
        N'converted ', @Converted, N', invalid ', @Invalid, N', rejected ', @GivenUp,
        N' (' + @Reasons + N')'
    ), 400);
END;
