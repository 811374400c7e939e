-- Job.archive_aim_batch, version 2.
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
-- (READPAST) is left for the next run, never waited for. OUTPUT ... INTO needs
-- PLSP.FLP_AIM_History to stay without triggers, foreign keys and check
-- constraints.
-- @Execute = 'N' only counts the rows the batch would move; it writes nothing.
--
-- Version 2 (issue 7):
--   * READPAST always with READCOMMITTEDLOCK: on a database with
--     READ_COMMITTED_SNAPSHOT ON a READPAST read under READ COMMITTED raises
--     error 650 (it would read row versions, which cannot skip locks).
--   * SET IMPLICIT_TRANSACTIONS OFF on entry (a caller with it ON would make
--     the pick open a transaction and the move refuse to start) and
--     DEADLOCK_PRIORITY LOW (a batch is the victim, and Job.run_batched
--     retries it on 1205); both revert when the procedure returns.
--   * Bounded lock waits: the caller's LOCK_TIMEOUT (Job.run_batched sets the
--     LockTimeoutMs setting); when called on its own with none (-1), 1000 ms.
--     A time-out (1222) is "left for the next batch" in Job.run_batched.
--   * The pick seeks the filtered index IX_FLP_AIM_Delivered (WHERE Status = 2,
--     migration 0005): an ordered range seek on Id > @FromId that reads
--     delivered rows only, instead of a clustered range scan that reads and
--     discards every pending and queued row (and ghost record) on the way. The
--     literal Status = 2 (not a parameter) is what lets the optimizer match the
--     filter; DeliveredUtc is an included column, so no lookup.
--   * @BatchSize at most 4000: the DELETE locks a key in the clustered index
--     and in each filtered index a row is in; SQL Server checks for escalation
--     every 1,250 locks and escalates at 5,000 on one index or table.
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * READPAST skips locked rows; the twin's DELETE waits at most lock_timeout, then moves the rest of the range with FOR UPDATE SKIP LOCKED.
--   * Its own short transaction; the twin has no transaction control (Job.run_batched commits).
--   * A char(1) parameter is cut to its length before the body runs ('YES' is 'Y'); the twin refuses 'YES' naming the parameter.
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
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;  -- READPAST needs READ COMMITTED (error 650 otherwise); reverts on return
    IF @@LOCK_TIMEOUT < 0
        SET LOCK_TIMEOUT 1000;  -- called on its own: never wait forever; reverts on return

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
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4000
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (move) or N (count only). ';
    IF @Position < 0
        SET @Errors += N'The value for the parameter @Position is not supported: give the last Id handled, or NULL at the start. ';

    -- The job's own setting: whole days a delivered row stays in the hot table.
    SELECT TOP (1) @RetentionText = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName IN ('archive_aim', '*') AND s.Name = 'RetentionDays'
    ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END;
    IF LEN(@RetentionText) BETWEEN 1 AND 5 AND @RetentionText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @RetentionDays = TRY_CAST(@RetentionText AS int);
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
    -- The keyset range of this batch: the next @BatchSize rows that may go. A
    -- seek on IX_FLP_AIM_Delivered (Id > @FromId, filter Status = 2 matched by
    -- the literal, DeliveredUtc included), ordered by Id, stopping after TOP.
    SELECT @Picked = COUNT(*), @ToId = MAX(k.Id)
    FROM (
        SELECT TOP (@BatchSize) a.Id
        -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
        FROM PLSP.FLP_AIM AS a WITH (READCOMMITTEDLOCK, READPAST)
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
            -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
            DELETE FROM PLSP.FLP_AIM WITH (ROWLOCK, READCOMMITTEDLOCK, READPAST)
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
    SET @Note = LEFT(CASE
        WHEN @Picked = 0 THEN CONCAT(N'no rows to move after Id ', @FromId)
        ELSE CONCAT(
            N'Id ', @FromId + 1, N'..', @ToId, N': ',
            CASE WHEN @Execute = 'Y' THEN N'moved ' ELSE N'would move ' END, @Rows,
            CASE WHEN @Rows < @Picked THEN CONCAT(N' of ', @Picked, N' (the rest locked or changed meanwhile: left for the next run)') END
        )
    END, 400);
END;
