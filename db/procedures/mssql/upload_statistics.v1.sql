-- Monitor.upload_statistics, version 1.
-- Uploads per LPS (SOR code) and UTC day from @FromDay to @ToDay
-- (inclusive, at most 62 days): uploads, documents and rejected documents,
-- rows inserted, updated, unchanged (the no-op share of a resync) and
-- rejected, throttled requests, and the rejected rows by reason as
-- 'reason=rows' pairs. flp status and the daily e-mail read it.
-- Twin difference: a procedure returning one result set here, a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.upload_statistics
    @FromDay date,
    @ToDay date
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
    IF @FromDay IS NULL
        SET @Errors += N'The value for the parameter @FromDay is not supported: give the first UTC day. ';
    IF @ToDay IS NULL OR @ToDay < @FromDay OR @ToDay > DATEADD(DAY, 61, @FromDay)
        SET @Errors += N'The value for the parameter @ToDay is not supported: give the last UTC day, on or after @FromDay, at most 62 days. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Read: one row per LPS and day, the newest day first
    ----------------------------------------------------------------------------
    SELECT
        s.SorCode, s.DayUtc, s.Uploads, s.Documents, s.RejectedDocuments,
        s.RowsInserted, s.RowsUpdated, s.RowsUnchanged, s.RowsRejected, s.Throttled,
        (
            SELECT STRING_AGG(CONCAT(r.Reason, '=', r.RowsRejected), ' ') WITHIN GROUP (ORDER BY r.RowsRejected DESC, r.Reason ASC)
            FROM Ops.UploadRejection AS r
            WHERE r.SorCode = s.SorCode AND r.DayUtc = s.DayUtc
        ) AS RejectedByReason
    FROM Ops.UploadStatistic AS s
    WHERE s.DayUtc BETWEEN @FromDay AND @ToDay
    ORDER BY s.DayUtc DESC, s.SorCode ASC;
END;
