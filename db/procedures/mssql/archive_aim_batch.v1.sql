-- Job.archive_aim_batch, version 1.
-- One batch of the Archive AIM job (the batch contract of Job.run_batched):
-- moves the next @BatchSize rows that may go from PLSP.FLP_AIM to
-- PLSP.FLP_AIM_History, walking the clustered key Id upward from @Position.
-- A row may go when it was delivered (Status = 2) longer ago than the job's
-- RetentionDays setting; nothing else ever moves.
--
-- The move is one statement in one short transaction: the rows leave the hot
-- table and enter the history together, or not at all. A row is in exactly one
-- of the two tables at every moment, and a batch retried after a crash finds
-- each row where it was (the history's primary key would refuse a second copy).
-- The DELETE takes the whole keyset range (@FromId, @ToId] as read, as the
-- PostgreSQL twin does, with no TOP: the range held at most @BatchSize rows that
-- may go when it was read, and a TOP without ORDER BY could leave any of them
-- behind the next batch's position. It checks the predicate again on every row
-- it locks, so a row another session changed since the range was read moves
-- only if it still may go, as it is then. A row another session holds locked
-- (READPAST, which needs READ COMMITTED: set on entry) is left for the next
-- run, never waited for. OUTPUT ... INTO needs PLSP.FLP_AIM_History to stay
-- without triggers, foreign keys and check constraints.
-- @Execute = 'N' only counts the rows the batch would move; it writes nothing.
--
-- Differences from the PostgreSQL twin, forced by the engine: PostgreSQL's
-- DELETE has no READPAST, so there the DELETE waits at most lock_timeout
-- (100 ms) for a locked row, then moves the rest of the range with FOR UPDATE
-- SKIP LOCKED; there is no transaction control there (Job.run_batched commits).
CREATE OR ALTER PROCEDURE Job.archive_aim_batch
    @BatchSize int,
    @Execute char(1),
    @Position bigint = NULL OUTPUT,
    @Rows int = NULL OUTPUT,
    @Done bit = NULL OUTPUT,
    @Note nvarchar(400) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;  -- READPAST needs it (error 650 otherwise); reverts when the procedure returns

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @RetentionText nvarchar(400);
    DECLARE @RetentionDays int;
    DECLARE @CutoffUtc datetime2(3);
    DECLARE @FromId bigint = COALESCE(@Position, 0);
    DECLARE @ToId bigint;
    DECLARE @Picked int;

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.archive_aim_batch must not run inside a transaction: it commits its own short transactions. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4999
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4999 rows (lock escalation starts at 5000). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (move) or N (count only). ';
    IF @Position < 0
        SET @Errors += N'The value for the parameter @Position is not supported: give the last Id handled, or NULL at the start. ';

    -- The job's own setting: whole days a delivered row stays in the hot table.
    SELECT TOP (1) @RetentionText = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName IN ('archive_aim', '*') AND s.Name = 'RetentionDays'
    ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END;
    IF LEN(@RetentionText) BETWEEN 1 AND 5 AND @RetentionText NOT LIKE N'%[^0-9]%'
        SET @RetentionDays = CAST(@RetentionText AS int);
    IF @RetentionDays IS NULL OR @RetentionDays > 36500
        SET @Errors += N'Setting RetentionDays (Ops.Setting, job archive_aim) is missing or not a whole number of days from 0 to 36500. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    SET @CutoffUtc = DATEADD(DAY, -@RetentionDays, SYSUTCDATETIME());

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    -- The keyset range of this batch: the next @BatchSize rows that may go.
    SELECT @Picked = COUNT(*), @ToId = MAX(k.Id)
    FROM (
        SELECT TOP (@BatchSize) a.Id
        FROM PLSP.FLP_AIM AS a WITH (READPAST)
        WHERE a.Id > @FromId AND a.Status = 2 AND a.DeliveredUtc < @CutoffUtc
        ORDER BY a.Id
    ) AS k;

    IF @Execute = 'N' OR @Picked = 0
        SET @Rows = @Picked;
    ELSE
    BEGIN
        BEGIN TRY
            BEGIN TRANSACTION;

            -- The whole range as read, like the PostgreSQL twin: no TOP.
            DELETE FROM PLSP.FLP_AIM WITH (ROWLOCK, READPAST)
            OUTPUT
                deleted.Id, deleted.ForloebsplanId, deleted.Status, deleted.CreatedUtc, deleted.QueuedUtc,
                deleted.DeliveredUtc, SYSUTCDATETIME()
            INTO PLSP.FLP_AIM_History (Id, ForloebsplanId, Status, CreatedUtc, QueuedUtc, DeliveredUtc, ArchivedUtc)
            WHERE Id > @FromId AND Id <= @ToId AND Status = 2 AND DeliveredUtc < @CutoffUtc;
            SET @Rows = @@ROWCOUNT;

            COMMIT TRANSACTION;
        END TRY
        BEGIN CATCH
            IF @@TRANCOUNT > 0
                ROLLBACK TRANSACTION;
            THROW;
        END CATCH;
    END;

    ----------------------------------------------------------------------------
    -- Report: where the next batch starts, and whether the keyset is exhausted
    ----------------------------------------------------------------------------
    SET @Position = COALESCE(@ToId, @Position);
    SET @Done = CASE WHEN @Picked < @BatchSize THEN 1 ELSE 0 END;
    SET @Note = CASE
        WHEN @Picked = 0 THEN CONCAT(N'no rows to move after Id ', @FromId)
        ELSE CONCAT(
            N'Id ', @FromId + 1, N'..', @ToId, N': ',
            CASE WHEN @Execute = 'Y' THEN N'moved ' ELSE N'would move ' END, @Rows,
            CASE WHEN @Rows < @Picked THEN CONCAT(N' of ', @Picked, N' (the rest locked or changed meanwhile: left for the next run)') END
        )
    END;
END;
