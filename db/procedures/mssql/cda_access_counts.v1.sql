-- Monitor.cda_access_counts, version 1.
-- Requests for care-plan documents per UTC day, requester and purpose, for the
-- daily operations e-mail: requests, distinct patients (by keyed hash),
-- answers 304 (not modified), failures (HTTP 400 and over), mean and greatest
-- latency. @Days days from @Day (UTC date).
-- Twin difference: a procedure returning one result set here, a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.cda_access_counts
    @Day date,
    @Days int = 1
AS
BEGIN
    SET NOCOUNT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @Day IS NULL OR @Day < '2000-01-01' OR @Day >= '2100-01-01'
        SET @Errors += N'The value for the parameter @Day is not supported: give a UTC date from 2000 to 2099. ';
    IF @Days IS NULL OR @Days < 1 OR @Days > 62
        SET @Errors += N'The value for the parameter @Days is not supported: give 1 to 62 days. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Read: one row per day, requester and purpose
    ----------------------------------------------------------------------------
    SELECT
        CAST(a.AccessedUtc AS date) AS Day,
        a.RequesterKind,
        a.Requester,
        a.Purpose,
        COUNT(*) AS Requests,
        COUNT(DISTINCT a.PatientHash) AS Patients,
        SUM(CASE WHEN a.HttpStatus = 304 THEN 1 ELSE 0 END) AS NotModified,
        SUM(CASE WHEN a.HttpStatus >= 400 THEN 1 ELSE 0 END) AS Failures,
        AVG(a.LatencyMs) AS MeanLatencyMs,
        MAX(a.LatencyMs) AS MaxLatencyMs
    FROM PLSP.CdaAccessLog AS a
    WHERE a.AccessedUtc >= CAST(@Day AS datetime2(3)) AND a.AccessedUtc < DATEADD(DAY, @Days, CAST(@Day AS datetime2(3)))
    GROUP BY CAST(a.AccessedUtc AS date), a.RequesterKind, a.Requester, a.Purpose
    ORDER BY Day, a.RequesterKind, a.Requester, a.Purpose;
END;
