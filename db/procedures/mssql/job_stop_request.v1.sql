-- Job.job_stop_request, version 1.
-- Asks a running batched job to stop at its next batch, and undoes the ask.
-- Job.run_batched (version 2) re-reads the job's settings before every batch
-- and stops cleanly ('stopped', "time limit reached") once the run is older
-- than TimeLimitSeconds, so a stop request is the job's own TimeLimitSeconds
-- row set to 1 second; the row the job had (or that it had none) is kept in
-- StopSavedTimeLimitSeconds and the run asked in StopRequestedRunId.
--   @Action = 'request': @Result 'requested', or 'not_running' (no run of the job holds its lock).
--   @Action = 'clear': puts the job's TimeLimitSeconds back once the run asked is over:
--     @Result 'cleared', 'still_running' (that run still holds the lock) or 'nothing' (no request).
-- The orchestrator asks on SIGTERM and clears before and after each run; the
-- fallback clears before it runs a job, so a request left by a killed
-- orchestrator never outlives the run it was meant for.
--
-- Differences from the PostgreSQL twin, one line each:
--   * A run is alive when its row is running and APPLOCK_TEST finds the job's lock held; the twin: pg_locks.
CREATE OR ALTER PROCEDURE Job.job_stop_request
    @JobName varchar(101),
    @Action varchar(10) = 'request',
    @Result varchar(20) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Resource nvarchar(255) = N'flp-job:' + @JobName;
    DECLARE @RunId bigint;
    DECLARE @Requested nvarchar(400);
    DECLARE @Saved nvarchar(400);
    DECLARE @Alive bit = 0;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NULL OR @JobName = '' OR @JobName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_]%' OR LEN(@JobName) > 100
        SET @Errors += N'The value for the parameter @JobName is not supported: give the job''s name in lower-case letters, digits and _ (up to 100). ';
    IF @Action IS NULL OR @Action NOT IN ('request', 'clear')
        SET @Errors += N'The value for the parameter @Action is not supported: use request or clear. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    BEGIN TRY
        BEGIN TRANSACTION;

        ------------------------------------------------------------------------
        -- Which run is alive, and what was asked
        ------------------------------------------------------------------------
        SELECT @RunId = MAX(r.JobRunId)
        FROM Ops.JobRun AS r
        WHERE r.JobName = @JobName AND r.Status = 'running';
        -- APPLOCK_TEST = 0: another session holds the job's lock.
        IF @RunId IS NOT NULL AND APPLOCK_TEST(N'flp_orchestrator', @Resource, N'Exclusive', N'Transaction') = 0
            SET @Alive = 1;
        SELECT @Requested = s.Value
        FROM Ops.Setting AS s WITH (UPDLOCK, HOLDLOCK)
        WHERE s.JobName = @JobName AND s.Name = 'StopRequestedRunId';

        ------------------------------------------------------------------------
        -- Request
        ------------------------------------------------------------------------
        IF @Action = 'request'
        BEGIN
            IF @Alive = 0
                SET @Result = 'not_running';
            ELSE IF @Requested IS NULL
            BEGIN
                SELECT @Saved = s.Value
                FROM Ops.Setting AS s WITH (UPDLOCK, HOLDLOCK)
                WHERE s.JobName = @JobName AND s.Name = 'TimeLimitSeconds';
                INSERT INTO Ops.Setting (JobName, Name, Value, Description)
                VALUES (
                    @JobName, 'StopSavedTimeLimitSeconds', COALESCE(@Saved, N'-'),
                    N'the job''s TimeLimitSeconds before a stop request (- : it had none); put back by Job.job_stop_request clear'
                );
                UPDATE Ops.Setting SET Value = N'1', UpdatedUtc = SYSUTCDATETIME()
                WHERE JobName = @JobName AND Name = 'TimeLimitSeconds';
                IF @@ROWCOUNT = 0
                    INSERT INTO Ops.Setting (JobName, Name, Value, Description)
                    VALUES (@JobName, 'TimeLimitSeconds', N'1', N'a stop request: no new batch; put back by Job.job_stop_request clear');
                INSERT INTO Ops.Setting (JobName, Name, Value, Description)
                VALUES (@JobName, 'StopRequestedRunId', CAST(@RunId AS nvarchar(20)), N'the run a stop request was made for');
                SET @Result = 'requested';
            END;
            ELSE
            BEGIN
                UPDATE Ops.Setting SET Value = CAST(@RunId AS nvarchar(20)), UpdatedUtc = SYSUTCDATETIME()
                WHERE JobName = @JobName AND Name = 'StopRequestedRunId';
                SET @Result = 'requested';
            END;
        END;

        ------------------------------------------------------------------------
        -- Clear, once the run asked is over
        ------------------------------------------------------------------------
        ELSE IF @Requested IS NULL
            SET @Result = 'nothing';
        ELSE IF @Alive = 1 AND @Requested = CAST(@RunId AS nvarchar(20))
            SET @Result = 'still_running';
        ELSE
        BEGIN
            SELECT @Saved = s.Value
            FROM Ops.Setting AS s
            WHERE s.JobName = @JobName AND s.Name = 'StopSavedTimeLimitSeconds';
            IF @Saved IS NULL OR @Saved = N'-'
                DELETE FROM Ops.Setting WHERE JobName = @JobName AND Name = 'TimeLimitSeconds';
            ELSE
                UPDATE Ops.Setting SET Value = @Saved, UpdatedUtc = SYSUTCDATETIME()
                WHERE JobName = @JobName AND Name = 'TimeLimitSeconds';
            DELETE FROM Ops.Setting
            WHERE JobName = @JobName AND Name IN ('StopRequestedRunId', 'StopSavedTimeLimitSeconds');
            SET @Result = 'cleared';
        END;

        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;
