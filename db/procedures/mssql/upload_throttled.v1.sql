-- Upload.upload_throttled, version 1.
-- Counts requests the service refused with 429 (a clinic's token bucket, the
-- concurrency limits) or shed, into Ops.UploadStatistic.Throttled per LPS (SOR
-- code) and UTC day. The service counts them in memory and flushes all of them
-- every few seconds in one call, so a flood of 429s costs the database one
-- small statement every few seconds, whatever its size.
-- @Counts is a JSON array of {"sor": "<digits>", "day": "YYYY-MM-DD",
-- "count": n}, 1 to 1000 entries, each day at most 7 days before @NowUtc
-- (NULL: now) and not after it; one upsert adds them all.
-- One transaction; ownership chaining reaches Ops.UploadStatistic for flp_lps.
--
-- Differences from the PostgreSQL twin: OPENJSON reads the counts (the twin:
-- jsonb functions); UPDATE WITH (UPDLOCK, HOLDLOCK) then INSERT WHERE NOT
-- EXISTS (the twin: ON CONFLICT).
CREATE OR ALTER PROCEDURE Upload.upload_throttled
    @Counts nvarchar(MAX),
    @NowUtc datetime2(3) = NULL,
    @Rows int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    IF @@LOCK_TIMEOUT < 0
        SET LOCK_TIMEOUT 5000;  -- a statistics row held long is waited for a bounded time; reverts on return

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Today date = CAST(COALESCE(@NowUtc, SYSUTCDATETIME()) AS date);
    DECLARE @Count TABLE (
        SorCode varchar(20) NOT NULL,
        DayUtc date NOT NULL,
        Throttled int NOT NULL,
        PRIMARY KEY (SorCode, DayUtc)
    );

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @Counts IS NULL OR ISJSON(@Counts) <> 1 OR LEFT(LTRIM(@Counts), 1) <> N'['
        OR (SELECT COUNT(*) FROM OPENJSON(@Counts)) NOT BETWEEN 1 AND 1000
        OR EXISTS (
            SELECT 1
            FROM OPENJSON(@Counts) AS e
            CROSS APPLY OPENJSON(CASE WHEN e.type = 5 THEN e.value ELSE N'{}' END) WITH (
                Sor nvarchar(100) '$.sor', DayText nvarchar(100) '$.day', CountText nvarchar(100) '$.count'
            ) AS j
            WHERE e.type <> 5
                OR j.Sor IS NULL OR j.Sor = N'' OR LEN(j.Sor) > 20 OR j.Sor COLLATE Latin1_General_BIN2 LIKE N'%[^0-9]%'
                OR TRY_CONVERT(date, j.DayText, 23) IS NULL OR j.DayText COLLATE Latin1_General_BIN2 NOT LIKE N'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
                OR j.CountText IS NULL OR j.CountText = N'' OR LEN(j.CountText) > 9 OR j.CountText COLLATE Latin1_General_BIN2 LIKE N'%[^0-9]%'
        )
        SET @Errors += N'The value for the parameter @Counts is not supported: give 1 to 1000 objects with sor (digits), day (YYYY-MM-DD), count. ';
    ELSE IF EXISTS (
        SELECT 1
        FROM OPENJSON(@Counts) WITH (DayText nvarchar(100) '$.day') AS j
        WHERE TRY_CONVERT(date, j.DayText, 23) NOT BETWEEN DATEADD(DAY, -7, @Today) AND @Today
    )
        SET @Errors += N'The value for the parameter @Counts is not supported: each day lies at most 7 days before now and not after it. ';
    IF @NowUtc IS NOT NULL AND (@NowUtc < '2000-01-01' OR @NowUtc > '9000-01-01')
        SET @Errors += N'The value for the parameter @NowUtc is not supported: give a UTC time after 2000, or NULL for now. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work: one upsert for every LPS and day
    ----------------------------------------------------------------------------
    INSERT INTO @Count (SorCode, DayUtc, Throttled)
    SELECT j.Sor, TRY_CONVERT(date, j.DayText, 23), SUM(CAST(j.CountText AS bigint))
    FROM OPENJSON(@Counts) WITH (Sor varchar(20) '$.sor', DayText nvarchar(100) '$.day', CountText nvarchar(100) '$.count') AS j
    GROUP BY j.Sor, TRY_CONVERT(date, j.DayText, 23);

    BEGIN TRY
        BEGIN TRANSACTION;

        UPDATE s WITH (UPDLOCK, HOLDLOCK)
        SET Throttled = s.Throttled + c.Throttled
        FROM Ops.UploadStatistic AS s
        INNER JOIN @Count AS c ON s.SorCode = c.SorCode AND s.DayUtc = c.DayUtc;
        SET @Rows = @@ROWCOUNT;

        INSERT INTO Ops.UploadStatistic (SorCode, DayUtc, Throttled)
        SELECT c.SorCode, c.DayUtc, c.Throttled
        FROM @Count AS c
        WHERE NOT EXISTS (
            SELECT 1 FROM Ops.UploadStatistic AS s WITH (UPDLOCK, HOLDLOCK)
            WHERE s.SorCode = c.SorCode AND s.DayUtc = c.DayUtc
        );
        SET @Rows += @@ROWCOUNT;

        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;
