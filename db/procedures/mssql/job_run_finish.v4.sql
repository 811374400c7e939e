-- Job.job_run_finish, version 4.
-- Ends a run started by Job.job_run_start in this session: writes its end
-- time, status, rows and message, and releases the job's lock. Another
-- session's live run cannot be finished from here.
-- Version 2: the job lock is the orchestrator principal's (see
-- Job.job_run_start); a message is cut to 4,000 characters by its parameter,
-- as the PostgreSQL twin now cuts it: a run must always be finishable.
-- Version 3 (migration 0014): refused inside a caller's open transaction
-- (@@TRANCOUNT > 0). The job lock is the session's and is released at once,
-- while the UPDATE of Ops.JobRun would stay in the caller's transaction: a
-- ROLLBACK by the caller would then undo the run's end with the lock already
-- gone (and under XACT_ABORT a doomed transaction cannot write at all). The
-- caller commits or rolls back first; Job.run_batched calls it with none open.
-- Version 4 (migration 0025): the UPDATE of the run's end sits in TRY/CATCH.
-- Version 3 released the lock after it, outside any CATCH: an UPDATE that
-- failed (lock timeout 1222 under the caller's LOCK_TIMEOUT, deadlock victim
-- 1205 at run_batched's DEADLOCK_PRIORITY LOW) ended the procedure with the
-- run 'running' and the session still holding the job's applock, so on a
-- pooled or long-lived connection the job could not start again. Now the
-- CATCH makes one more, smaller attempt to end the run as 'failed' with the
-- error that stopped the first, releases the lock whatever that attempt does,
-- and raises the first error again. A refused call (the checks below) changes
-- nothing: the run and its lock stay for a correct call or Job.job_run_fail.
-- A client's attention (query timeout, cancel) ends the batch without any
-- CATCH: the lock stays with the session until Job.job_run_fail (the
-- orchestrator calls it after every failure) or the session's end.
-- Parameters and results are those of version 3.
--
-- Differences from the PostgreSQL twin, one line each:
--   * Refused inside a caller's open transaction (@@TRANCOUNT > 0); the twin cannot see one (no @@TRANCOUNT) and has no such check.
--   * The job lock is found with APPLOCK_MODE for members of flp_orchestrator (or db_owner) only; the twin: pg_locks.
--   * @Message nvarchar(4000) is cut by the parameter; the twin cuts it with left(..., 4000).
--   * After a failed UPDATE the CATCH tries to end the run 'failed'; the twin cannot (its RAISE rolls the CALL back): the next start marks it abandoned.
CREATE OR ALTER PROCEDURE Job.job_run_finish
    @JobRunId bigint,
    @Status varchar(20),
    @RowsAffected bigint = NULL,
    @Message nvarchar(4000) = NULL
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    -- Members of the orchestrator's role and the database's owners may hold job locks.
    DECLARE @IsOrchestrator bit = CASE WHEN IS_MEMBER(N'flp_orchestrator') = 1 OR IS_MEMBER(N'db_owner') = 1 THEN 1 ELSE 0 END;
    -- APPLOCK_MODE fails for a caller outside the principal: asked only for members.
    DECLARE @LockMode nvarchar(32) = N'NoLock';

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @JobName varchar(100);
    DECLARE @Resource nvarchar(255);
    DECLARE @Failure nvarchar(4000);

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += CONCAT(
            N'Job.job_run_finish must not run inside a transaction (@@TRANCOUNT ', @@TRANCOUNT,
            N'): it releases the job lock at once, so a later ROLLBACK would undo the run''s end. Commit or roll back first. '
        );

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    SELECT @JobName = JobName
    FROM Ops.JobRun
    WHERE JobRunId = @JobRunId AND Status = 'running';
    IF @IsOrchestrator = 1 AND @JobName IS NOT NULL
        SET @LockMode = APPLOCK_MODE(N'flp_orchestrator', N'flp-job:' + @JobName, 'Session');

    IF @JobName IS NULL
        SET @Errors += N'The value for the parameter @JobRunId is not supported: no running job run has this id. ';
    ELSE IF @LockMode = N'NoLock'
        SET @Errors += N'The value for the parameter @JobRunId is not supported: this session does not hold that run''s job lock. ';
    IF @Status IS NULL OR @Status NOT IN ('succeeded', 'stopped', 'failed')
        SET @Errors += N'The value for the parameter @Status is not supported: use succeeded, stopped or failed. ';
    IF @RowsAffected < 0
        SET @Errors += N'The value for the parameter @RowsAffected is not supported: it cannot be negative. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Log end
    ----------------------------------------------------------------------------
    SET @Resource = N'flp-job:' + @JobName;
    BEGIN TRY
        UPDATE Ops.JobRun
        SET EndedUtc = SYSUTCDATETIME(),
            Status = @Status,
            RowsAffected = COALESCE(@RowsAffected, RowsAffected),
            Message = @Message
        WHERE JobRunId = @JobRunId;
    END TRY
    BEGIN CATCH
        -- None was open on entry: XACT_ABORT has rolled back the statement's own.
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        SET @Failure = LEFT(CONCAT(
            N'failed while finishing as ', @Status, N': Error ', ERROR_NUMBER(), N' in ', ERROR_PROCEDURE(),
            N' line ', ERROR_LINE(), N': ', ERROR_MESSAGE(), N'; the job''s message: ', @Message
        ), 4000);
        -- One more attempt, without the caller's rows: the run must not stay 'running'.
        BEGIN TRY
            UPDATE Ops.JobRun
            SET EndedUtc = SYSUTCDATETIME(),
                Status = 'failed',
                Message = @Failure
            WHERE JobRunId = @JobRunId AND Status = 'running';
        END TRY
        BEGIN CATCH
            -- Left 'running': with the lock released below, the job's next start marks it abandoned.
            IF @@TRANCOUNT > 0
                ROLLBACK TRANSACTION;
        END CATCH;
        -- Whatever happened to the row, the lock goes: the job can start again.
        EXEC sys.sp_releaseapplock @Resource = @Resource, @LockOwner = 'Session', @DbPrincipal = N'flp_orchestrator';
        -- Back in this CATCH block's scope: THROW raises the UPDATE's error, not the inner one.
        THROW;
    END CATCH;

    EXEC sys.sp_releaseapplock @Resource = @Resource, @LockOwner = 'Session', @DbPrincipal = N'flp_orchestrator';
END;
