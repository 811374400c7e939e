-- Job.aim_import_claim, version 1.
-- One claim of FlpAimImport (docs/jobs/aim.md): the next @BatchSize FLP_AIM
-- rows to publish after @AfterId, oldest (lowest Id) first. A row is due
-- while it is pending (Status 0), and again when it was queued (Status 1)
-- longer ago than @VisibilityTimeoutSeconds without being delivered (its
-- message was lost, or dead-lettered). The claim only stamps the run on the
-- rows (ClaimJobRunId); Status stays as it was, so a run that dies before its
-- messages are confirmed leaves the rows due for the next run: nothing is lost.
-- Job.aim_import_mark_queued marks them queued once the queue has confirmed.
-- Rows another session holds locked (the consumer marking them delivered) are
-- skipped (UPDLOCK, READPAST), never waited for.
-- @Ids returns the claimed ids as a comma list in Id order; @LastId the
-- highest one (where the next claim starts). @Execute = 'N' counts the rows a
-- claim would take and changes nothing.
-- Only the session running the aim_import job (holding its lock) may claim.
CREATE OR ALTER PROCEDURE Job.aim_import_claim
    @JobRunId bigint,
    @BatchSize int,
    @VisibilityTimeoutSeconds int,
    @Execute char(1) = 'Y',
    @AfterId bigint = NULL,
    @LastId bigint = NULL OUTPUT,
    @Rows int = NULL OUTPUT,
    @Ids varchar(MAX) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;  -- READPAST needs it (error 650 otherwise); reverts when the procedure returns

    -- Job locks are taken under the flp_orchestrator principal (Job.job_run_start);
    -- APPLOCK_MODE fails for a caller outside it, so it is asked only for members.
    DECLARE @IsOrchestrator bit = CASE WHEN IS_MEMBER(N'flp_orchestrator') = 1 OR IS_MEMBER(N'db_owner') = 1 THEN 1 ELSE 0 END;
    DECLARE @LockMode nvarchar(32) = N'NoLock';
    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @FromId bigint = COALESCE(@AfterId, 0);
    DECLARE @CutoffUtc datetime2(3);
    DECLARE @Claimed TABLE (Id bigint NOT NULL PRIMARY KEY);

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
    IF @BatchSize IS NULL OR @BatchSize NOT BETWEEN 1 AND 4999
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4999 rows (lock escalation starts at 5000). ';
    IF @VisibilityTimeoutSeconds IS NULL OR @VisibilityTimeoutSeconds NOT BETWEEN 1 AND 604800
        SET @Errors += N'The value for the parameter @VisibilityTimeoutSeconds is not supported: give 1 to 604800 seconds. ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (claim) or N (count only). ';
    IF @AfterId < 0
        SET @Errors += N'The value for the parameter @AfterId is not supported: give the last Id claimed, or NULL at the start. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    SET @CutoffUtc = DATEADD(SECOND, -@VisibilityTimeoutSeconds, SYSUTCDATETIME());

    ----------------------------------------------------------------------------
    -- Do the work (the run's Ops.JobRun row is its log)
    ----------------------------------------------------------------------------
    IF @Execute = 'N'
        SELECT @Rows = COUNT(*), @LastId = MAX(d.Id), @Ids = NULL
        FROM (
            SELECT TOP (@BatchSize) a.Id
            FROM PLSP.FLP_AIM AS a WITH (READCOMMITTEDLOCK, READPAST)
            WHERE a.Status IN (0, 1) AND a.Id > @FromId AND (a.Status = 0 OR a.QueuedUtc < @CutoffUtc)
            ORDER BY a.Id
        ) AS d;
    ELSE
    BEGIN
        WITH Due AS (
            SELECT TOP (@BatchSize) a.Id, a.ClaimJobRunId
            FROM PLSP.FLP_AIM AS a WITH (ROWLOCK, UPDLOCK, READPAST)
            WHERE a.Status IN (0, 1) AND a.Id > @FromId AND (a.Status = 0 OR a.QueuedUtc < @CutoffUtc)
            ORDER BY a.Id
        )

        UPDATE Due
        SET ClaimJobRunId = @JobRunId
        OUTPUT inserted.Id INTO @Claimed (Id);

        SELECT
            @Rows = COUNT(*),
            @LastId = MAX(c.Id),
            @Ids = STRING_AGG(CAST(c.Id AS varchar(MAX)), ',') WITHIN GROUP (ORDER BY c.Id)
        FROM @Claimed AS c;
    END;
    SET @LastId = COALESCE(@LastId, @FromId);
END;
