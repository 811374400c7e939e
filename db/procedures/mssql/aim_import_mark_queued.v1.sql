-- Job.aim_import_mark_queued, version 1.
-- Marks queued (Status 1, QueuedUtc now) the rows one claim of this run took,
-- Ids @FromId (exclusive) to @ToId, once the queue has confirmed every
-- message holding them. A row delivered meanwhile (Status 2: a consumer was
-- faster than this call) stays delivered. Only the session running the
-- aim_import job may mark.
CREATE OR ALTER PROCEDURE Job.aim_import_mark_queued
    @JobRunId bigint,
    @FromId bigint,
    @ToId bigint,
    @Rows int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    -- Job locks are taken under the flp_orchestrator principal (Job.job_run_start);
    -- APPLOCK_MODE fails for a caller outside it, so it is asked only for members.
    DECLARE @IsOrchestrator bit = CASE WHEN IS_MEMBER(N'flp_orchestrator') = 1 OR IS_MEMBER(N'db_owner') = 1 THEN 1 ELSE 0 END;
    DECLARE @LockMode nvarchar(32) = N'NoLock';
    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check requirements: this session runs the aim_import job
    ----------------------------------------------------------------------------
    IF @IsOrchestrator = 1
        SET @LockMode = APPLOCK_MODE(N'flp_orchestrator', N'flp-job:aim_import', 'Session');
    IF NOT EXISTS (
        SELECT 1 FROM Ops.JobRun AS r
        WHERE r.JobRunId = @JobRunId AND r.JobName = 'aim_import' AND r.Status = 'running'
    ) OR @LockMode = N'NoLock'
        SET @Errors += N'The value for the parameter @JobRunId is not supported: give the running aim_import run this session started (Job.job_run_start). ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @FromId IS NULL OR @FromId < 0
        SET @Errors += N'The value for the parameter @FromId is not supported: give the position the claim started after (0 at the start). ';
    IF @ToId IS NULL OR @ToId <= @FromId
        SET @Errors += N'The value for the parameter @ToId is not supported: give the highest Id the claim returned (above @FromId). ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    UPDATE PLSP.FLP_AIM WITH (ROWLOCK)
    SET Status = 1,
        QueuedUtc = SYSUTCDATETIME()
    WHERE Id > @FromId AND Id <= @ToId AND ClaimJobRunId = @JobRunId AND Status IN (0, 1);
    SET @Rows = @@ROWCOUNT;
END;
