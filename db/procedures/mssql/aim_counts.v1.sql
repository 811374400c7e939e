-- Monitor.aim_counts, version 1.
-- The AIM pipeline for flp status (docs/aim-document.md), readable by the
-- operator role: FLP_AIM rows pending (status 0), queued (1) and delivered (2,
-- still in the hot table until the nightly archive), queued rows past the
-- visibility timeout (due to be published again), the oldest pending row's
-- creation time, and the database queue's dead letters for flp.aim (with
-- RabbitMQ the dead letters are RabbitMQ's: flp aim status reads them there).
-- The counts read IX_FLP_AIM_Undelivered and IX_FLP_AIM_Delivered. The oldest
-- pending row is the first pending one by Id (Ids grow as rows are created): an
-- ordered seek on IX_FLP_AIM_Undelivered and one lookup of its CreatedUtc, not a
-- lookup per pending row (CreatedUtc is not in the index). NowUtc is the
-- database's time.
-- Twin difference: a procedure returning one result set here, a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.aim_counts
AS
BEGIN
    SET NOCOUNT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();
    DECLARE @TimeoutText nvarchar(400);
    DECLARE @TimeoutSeconds int;

    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    -- Check parameters: none (it has none). The one setting read falls back to
    -- its shipped default (7200 seconds) when malformed, for a status must answer.
    ----------------------------------------------------------------------------
    SELECT @TimeoutText = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName = 'aim_import' AND s.Name = 'VisibilityTimeoutSeconds';
    SET @TimeoutSeconds = CASE
        WHEN LEN(@TimeoutText) BETWEEN 1 AND 6 AND @TimeoutText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%' THEN CAST(@TimeoutText AS int)
        ELSE 7200
    END;

    ----------------------------------------------------------------------------
    -- Read: one row of counts
    ----------------------------------------------------------------------------
    SELECT
        (SELECT COUNT_BIG(*) FROM PLSP.FLP_AIM AS a WHERE a.Status IN (0, 1) AND a.Status = 0) AS Pending,
        (SELECT COUNT_BIG(*) FROM PLSP.FLP_AIM AS a WHERE a.Status IN (0, 1) AND a.Status = 1) AS Queued,
        (
            SELECT COUNT_BIG(*) FROM PLSP.FLP_AIM AS a
            WHERE
                a.Status IN (0, 1) AND a.Status = 1
                AND a.QueuedUtc < DATEADD(SECOND, -@TimeoutSeconds, @NowUtc)
        ) AS Overdue,
        (SELECT COUNT_BIG(*) FROM PLSP.FLP_AIM AS a WHERE a.Status = 2) AS Delivered,
        (
            SELECT TOP (1) a.CreatedUtc FROM PLSP.FLP_AIM AS a
            WHERE a.Status IN (0, 1) AND a.Status = 0
            ORDER BY a.Id
        ) AS OldestPendingUtc,
        (SELECT COUNT_BIG(*) FROM Ops.QueueDeadLetter AS d WHERE d.QueueName = 'flp.aim') AS DeadLetters,
        @NowUtc AS NowUtc;
END;
