-- Job.inclusion_recompute, version 2.
-- The full recompute, for when the rules change wholesale: requests a sweep
-- (PLSP.InclusionSweep) that Job.check_inclusion_batch walks beside the dirty
-- list, every patient once in PatientId order, a batch at a time, so it never
-- holds a long transaction. It obeys the window rule of Relevant-list changes:
-- when the population is larger than RelevantChangeMaxPatients the sweep only
-- advances in the off-hours window (Job.off_hours_check), unless @Force = 'Y'.
-- A sweep already running is not requested twice (@Force = 'Y' then forces it).
-- @Result: 'requested' (runs now), 'waiting' (runs in the off-hours window),
-- 'running' (a sweep was there already), 'dry_run'. @Patients: the population.
-- @Execute = 'N' reports what it would do and writes nothing. @NowUtc: the
-- time the window is judged at (NULL: the clock).
-- Version 2 against version 1: the off-hours window includes the Danish public
-- holidays and, by the OffHoursClosingDays setting, the days most clinics close
-- (Job.off_hours_check version 2); nothing else changed.
--
-- Differences from the PostgreSQL twin: none in behaviour.
CREATE OR ALTER PROCEDURE Job.inclusion_recompute
    @NowUtc datetime2(3) = NULL,
    @Force char(1) = 'N',
    @Execute char(1) = 'Y',
    @Patients bigint = NULL OUTPUT,
    @Result varchar(20) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = COALESCE(@NowUtc, SYSUTCDATETIME());
    DECLARE @Text nvarchar(400);
    DECLARE @Max int;
    DECLARE @OffHours bit;
    DECLARE @LocalTime varchar(30);
    DECLARE @Holiday nvarchar(40);
    DECLARE @Running bigint;

    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @NowUtc IS NOT NULL AND (@NowUtc < '2000-01-01' OR @NowUtc > '9000-01-01')
        SET @Errors += N'The value for the parameter @NowUtc is not supported: give NULL (the clock) or a UTC time after 2000. ';
    IF @Force IS NULL OR @Force NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Force is not supported: use Y (run now, whatever the window) or N. ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (request) or N (report only). ';
    SELECT @Text = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName = 'check_inclusion' AND s.Name = 'RelevantChangeMaxPatients';
    IF LEN(@Text) BETWEEN 1 AND 9 AND @Text COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @Max = TRY_CAST(@Text AS int);
    IF @Max IS NULL
        SET @Errors += N'Setting RelevantChangeMaxPatients (Ops.Setting, job check_inclusion) is missing or not a whole number of patients. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Log start: the request is the PLSP.InclusionSweep row itself.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    EXEC Job.off_hours_check
        @NowUtc = @Now,
        @OffHours = @OffHours OUTPUT,
        @LocalTime = @LocalTime OUTPUT,
        @Holiday = @Holiday OUTPUT;
    SELECT @Patients = COUNT_BIG(*) FROM PLSP.Patient;
    SELECT @Running = MIN(w.SweepId) FROM PLSP.InclusionSweep AS w WHERE w.FinishedUtc IS NULL;

    IF @Execute = 'N'
        SET @Result = 'dry_run';
    ELSE IF @Running IS NOT NULL
    BEGIN
        IF @Force = 'Y'
            UPDATE w SET w.Forced = 1 FROM PLSP.InclusionSweep AS w WHERE w.SweepId = @Running;
        SET @Result = 'running';
    END
    ELSE
    BEGIN
        INSERT INTO PLSP.InclusionSweep (RequestedUtc, NextPatientId, Patients, Forced)
        VALUES (SYSUTCDATETIME(), 0, @Patients, CASE WHEN @Force = 'Y' THEN 1 ELSE 0 END);
        SET @Result = CASE WHEN @Force = 'Y' OR @OffHours = 1 OR @Patients <= @Max THEN 'requested' ELSE 'waiting' END;
    END;

    ----------------------------------------------------------------------------
    -- Log end: Job.check_inclusion's runs note the swept patients per batch.
    ----------------------------------------------------------------------------
END;
