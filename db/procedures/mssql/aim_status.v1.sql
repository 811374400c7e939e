-- Job.aim_status, version 1.
-- The AIM pipeline's rows for an operator (flp aim status, flp status):
-- FLP_AIM rows pending, queued and delivered (still in the hot table), rows
-- queued longer than the VisibilityTimeoutSeconds setting (due to be
-- published again), and the age of the oldest pending row in seconds (NULL
-- when none is pending). The dead letters are the queue's (Job.queue_status).
CREATE OR ALTER PROCEDURE Job.aim_status
    @Pending bigint = NULL OUTPUT,
    @Queued bigint = NULL OUTPUT,
    @Delivered bigint = NULL OUTPUT,
    @Overdue bigint = NULL OUTPUT,
    @OldestPendingSeconds int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();
    DECLARE @TimeoutText nvarchar(400);
    DECLARE @TimeoutSeconds int;

    ----------------------------------------------------------------------------
    -- Check parameters: every parameter is an output; the one setting read
    -- falls back to its shipped default (7200) when malformed, for a status
    -- must answer
    ----------------------------------------------------------------------------
    SELECT @TimeoutText = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName = 'aim_import' AND s.Name = 'VisibilityTimeoutSeconds';
    SET @TimeoutSeconds = CASE
        WHEN LEN(@TimeoutText) BETWEEN 1 AND 6 AND @TimeoutText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%' THEN CAST(@TimeoutText AS int)
        ELSE 7200
    END;

    ----------------------------------------------------------------------------
    -- Do the work (reads only)
    ----------------------------------------------------------------------------
    SELECT
        @Pending = COUNT_BIG(CASE WHEN a.Status = 0 THEN 1 END),
        @Queued = COUNT_BIG(CASE WHEN a.Status = 1 THEN 1 END),
        @Overdue = COUNT_BIG(CASE WHEN a.Status = 1 AND a.QueuedUtc < DATEADD(SECOND, -@TimeoutSeconds, @NowUtc) THEN 1 END),
        @OldestPendingSeconds = DATEDIFF(SECOND, MIN(CASE WHEN a.Status = 0 THEN a.CreatedUtc END), @NowUtc)
    FROM PLSP.FLP_AIM AS a
    WHERE a.Status IN (0, 1);

    SELECT @Delivered = COUNT_BIG(*)
    FROM PLSP.FLP_AIM AS a
    WHERE a.Status = 2;
END;
