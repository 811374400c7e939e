-- Job.convert_values_rows, version 2.
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
-- Version 2 (the same decisions as version 1; docs/benchmarks.md): pick the
-- rows, convert them in one statement, write them in one UPDATE, count.
--   * each raw text is read once: named steps (a WITH chain the optimizer
--     inlines into one scan) yield comparator, sign, number text and unit
--     text, the number's readings and the time (no scalar function, no cursor);
--   * the grouping rules compare the text's shape (TRANSLATE turns every digit
--     into 9: '1.234,5' has the shape '9.999,9'), only for text with a
--     separator (a plain integer compares none);
--   * the rules are joined once per statement: the active analysis per code,
--     the active unit mappings per code and unit (version 1: a TOP (1) seek
--     into RelevantVaerdiEnhed per row);
--   * TRY_CAST and TRY_CONVERT read numbers and dates without ever raising.
-- The rows are taken with UPDLOCK, READPAST in one short transaction
-- (@BatchSize at most 4,000: under lock escalation).
--
-- Differences from the PostgreSQL twin, forced by the engine, one a line:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * shapes and LIKE patterns where PostgreSQL has boolean regular expressions (no regex in T-SQL);
--   * TRY_CONVERT for dates where PostgreSQL checks the parts before make_timestamp;
--   * ids into a table variable with UPDLOCK, READPAST where PostgreSQL picks ctids FOR UPDATE SKIP LOCKED;
--   * convert into a table variable, then one UPDATE, where PostgreSQL writes in a data-modifying WITH;
--   * Danish time is 'Romance Standard Time' (Windows' name for Europe/Copenhagen);
--   * no planner setting (PostgreSQL: enable_seqscan off, or it scans the table instead of fetching by ctid).
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

        -- Convert: one pass over the picked rows. Each step names what it reads
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
            -- the picked rows: the trimmed text, the Unit column, the time
            SELECT
                v.PatientvaerdiId,
                v.ConversionAttempts,
                v.Code,
                LTRIM(RTRIM(REPLACE(COALESCE(v.RawValue, N''), NCHAR(160), N' '))) AS Raw,
                NULLIF(LTRIM(RTRIM(v.Unit)), N'') AS UnitColumn,
                LTRIM(RTRIM(v.RawTime)) AS RawTime
            FROM @Picked AS p
            INNER JOIN PLSP.Patientvaerdier AS v ON p.PatientvaerdiId = v.PatientvaerdiId
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
                    WHEN n.UnitText LIKE N'%[0-9]%' COLLATE Latin1_General_BIN2 OR n.UnitText LIKE N'[+-]%' THEN 0
                    WHEN n.NumberText = N'' OR LEN(n.NumberText) > 20 OR LEFT(n.NumberText, 1) IN (N'.', N',') THEN 0
                    ELSE 1
                END AS Lexed
            FROM lexed AS n
        ),

        readings AS (
            -- the first reading (a separator is a decimal mark where it can be), the second
            -- (a lone separator before three digits groups thousands), the given unit, the time as UTC
            SELECT
                q.PatientvaerdiId,
                q.ConversionAttempts,
                q.Code,
                q.Raw,
                q.Comparator,
                CASE
                    WHEN q.Lexed = 0 THEN NULL
                    -- an integer
                    WHEN q.LastSepAt IS NULL THEN q.Sign + q.NumberText
                    -- one separator: the decimal mark
                    WHEN q.Shape LIKE N'9%9' AND LEFT(q.Shape, q.LastSepAt - 1) NOT LIKE N'%[^9]%' COLLATE Latin1_General_BIN2
                        THEN q.Sign + REPLACE(q.NumberText, N',', N'.')
                    -- both: the last one is the decimal mark, the other groups thousands
                    WHEN q.Shape LIKE N'%.%' AND q.Shape LIKE N'%,%' AND q.NumberText NOT LIKE N'0%'
                        AND q.Shape LIKE N'%9'
                        AND SUBSTRING(q.Shape, q.LastSepAt + 1, 100) NOT LIKE N'%[^9]%' COLLATE Latin1_General_BIN2
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
                    WHEN q.RawTime LIKE '[0-9][0-9]-[0-9][0-9]-[0-9][0-9][0-9][0-9]' COLLATE Latin1_General_BIN2
                        THEN CAST(
                            TRY_CONVERT(datetime2(3), q.RawTime, 105) AT TIME ZONE 'Romance Standard Time' AT TIME ZONE 'UTC'
                            AS datetime2(3)
                        )
                    WHEN q.RawTime LIKE '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' COLLATE Latin1_General_BIN2
                        THEN CAST(
                            TRY_CONVERT(datetime2(3), q.RawTime, 23) AT TIME ZONE 'Romance Standard Time' AT TIME ZONE 'UTC'
                            AS datetime2(3)
                        )
                    WHEN q.RawTime COLLATE Latin1_General_BIN2
                        LIKE '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][+-][0-9][0-9][0-9][0-9]'
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

        -- Write: one UPDATE of the picked rows.
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
