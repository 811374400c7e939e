-- Job.job_run_missed, version 1.
-- Records that a slot of a job's timetable passed while no scheduler ran it
-- and is now older than the job's grace period: one Ops.JobRun row with
-- Status 'missed', StartedUtc the slot, EndedUtc now. The scheduler that
-- claimed the slot (Job.job_slot_claim) calls it once, so a long downtime
-- leaves one missed row per job, never one per slot.
CREATE OR ALTER PROCEDURE Job.job_run_missed
    @JobName varchar(101),
    @SlotUtc datetime2(3),
    @TriggeredBy varchar(20) = 'orchestrator',
    @Host nvarchar(129) = NULL,
    @Message nvarchar(4000) = NULL,
    @JobRunId bigint = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NULL OR @JobName = '' OR @JobName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_]%' OR LEN(@JobName) > 100
        SET @Errors += N'The value for the parameter @JobName is not supported: give the job''s name in lower-case letters, digits and _ (up to 100). ';
    IF @SlotUtc IS NULL OR @SlotUtc > SYSUTCDATETIME()
        SET @Errors += N'The value for the parameter @SlotUtc is not supported: give the missed slot''s time in UTC, not in the future. ';
    IF @TriggeredBy IS NULL OR @TriggeredBy NOT IN ('orchestrator', 'agent', 'manual', 'demo', 'test')
        SET @Errors += N'The value for the parameter @TriggeredBy is not supported: use orchestrator, agent, manual, demo or test. ';
    IF LEN(@Host) > 128
        SET @Errors += N'The value for the parameter @Host is not supported: give at most 128 characters. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Log the miss
    ----------------------------------------------------------------------------
    INSERT INTO Ops.JobRun (JobName, TriggeredBy, Host, StartedUtc, EndedUtc, Status, Message)
    VALUES (
        @JobName, @TriggeredBy, COALESCE(@Host, N'unknown'), @SlotUtc, SYSUTCDATETIME(),
        'missed', COALESCE(@Message, N'missed: no scheduler ran the slot within the job''s grace period')
    );
    SET @JobRunId = CAST(SCOPE_IDENTITY() AS bigint);
END;
