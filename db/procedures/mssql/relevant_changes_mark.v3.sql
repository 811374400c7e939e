-- Job.relevant_changes_mark, version 3.
-- Relevant-list changes mark only the patients they concern (known problem 4).
-- The triggers of migration 0009 record every change of a Relevant row in
-- PLSP.RelevantChange: the instant it takes effect (ActiveFromUtc, and
-- ActiveToUtc when set) and its code. Once a change is due (EffectiveUtc <=
-- @NowUtc), this procedure
--   * counts the patients with the changed code (diagnosis prefix, ATC prefix,
--     converted values of the analysis, the property, the service; every
--     patient for a care-plan type), once, into RelevantChange.Patients;
--   * marks them dirty (PLSP.PatientInkluderetPending, due now) in PatientId
--     order, at most @Limit patients a call (RelevantChange.NextPatientId
--     remembers where it stopped), and sets AppliedUtc when all are marked;
--   * but a change touching more patients than the RelevantChangeMaxPatients
--     setting waits for the off-hours window (Job.off_hours_check: 22:00-06:00
--     weekends and Danish public holidays, Danish time, by default) unless @Force = 'Y' (which also
--     flags the due changes Forced, so later calls go on with them).
-- Job.check_inclusion_batch calls it before every batch (@NowUtc NULL: the
-- clock); a DBA may call it to force a change through. @NowUtc lets a test
-- or a DBA judge the window at another time.
-- @Execute = 'N' counts what it would mark and writes nothing.
-- @Changes: changes finished by this call; @Patients: patients marked;
-- @Waiting: due changes left waiting for the window.
-- Version 2 against version 1: the off-hours window includes the Danish public
-- holidays and, by the OffHoursClosingDays setting, the days most clinics close
-- (Job.off_hours_check version 2); nothing else changed.
-- Version 3 against version 2: the same patients marked, faster.
--   * @Limit NULL (the default) takes the RelevantChangeMarkSlice setting
--     (migration 0026, default 2,000), so the slices no longer shrink with the
--     check's batch (400 since migration 0022); at most 2,000 either way: a
--     marked patient takes at most 2 locks per statement in each index of
--     PLSP.PatientInkluderetPending (primary key: the UPDLOCK, HOLDLOCK
--     probe's key or range, then the new key; IX_PatientInkluderetPending_Due:
--     the old and the new key of an update), so a slice stays under the 5,000
--     of lock escalation (4,000 at most). Both probes name the primary key
--     (FORCESEEK): a merge join over a scan of the dirty list (a plan the
--     optimizer picks for 2,000 rows against a long list), or a DueUtc range,
--     would range-lock every row read under HOLDLOCK and escalate.
--   * An ATC prefix (LIKE @Code + '%', a range seek) reads the index
--     PLSP.Medicin (AtcCode, PatientId) of migration 0026 instead of scanning
--     every medication, a diagnosis prefix PLSP.Diagnose (CodeSystem, Code,
--     PatientId). The count and the slice run WITH OPTION (RECOMPILE) (T-SQL
--     only, a plan hint): one statement serves six tables, and a plan compiled
--     for this change's table and prefix drops the other branches (a compile
--     per slice; a change has at most a few hundred).
-- Each change's slice is one short transaction (at most @Limit <= 2,000 rows).
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * Table variables hold the patients of a step; the twin: arrays.
--   * The loop over the due changes (never over patients) is a WHILE over ChangeId; the twin: FOR ... IN a query.
--   * An ATC or diagnosis prefix is LIKE @Code + '%' (a range seek); the twin: an explicit range in byte order (COLLATE "C") beside LIKE.
CREATE OR ALTER PROCEDURE Job.relevant_changes_mark
    @NowUtc datetime2(3) = NULL,
    @Force char(1) = 'N',
    @Execute char(1) = 'Y',
    @Limit int = NULL,
    @Changes int = NULL OUTPUT,
    @Patients int = NULL OUTPUT,
    @Waiting int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;
    IF @@LOCK_TIMEOUT < 0
        SET LOCK_TIMEOUT 1000;  -- called on its own: never wait forever; reverts on return

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Clock datetime2(3) = SYSUTCDATETIME();
    DECLARE @Now datetime2(3) = COALESCE(@NowUtc, SYSUTCDATETIME());
    DECLARE @OffHours bit;
    DECLARE @LocalTime varchar(30);
    DECLARE @Holiday nvarchar(40);
    DECLARE @Text nvarchar(400);
    DECLARE @Max int;
    DECLARE @SliceText nvarchar(400);
    DECLARE @Left int;
    DECLARE @Seen int = 0;
    DECLARE @ChangeId bigint = 0;
    DECLARE @Table varchar(30);
    DECLARE @Code varchar(20);
    DECLARE @CodeSystem varchar(10);
    DECLARE @Count int;
    DECLARE @NextPatientId bigint;
    DECLARE @Forced bit;
    DECLARE @Slice int;
    DECLARE @SliceLast bigint;
    DECLARE @Ids TABLE (PatientId bigint NOT NULL PRIMARY KEY);

    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check (each slice commits on its own).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @NowUtc IS NOT NULL AND (@NowUtc < '2000-01-01' OR @NowUtc > '9000-01-01')
        SET @Errors += N'The value for the parameter @NowUtc is not supported: give NULL (the clock) or a UTC time after 2000. ';
    IF @Force IS NULL OR @Force NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Force is not supported: use Y (mark now, whatever the window) or N. ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (mark) or N (count only). ';
    IF @Limit < 1 OR @Limit > 2000
        SET @Errors += N'The value for the parameter @Limit is not supported: give 1 to 2000 patients a call, or NULL (the RelevantChangeMarkSlice setting). ';
    SELECT
        @Text = MAX(CASE WHEN s.Name = 'RelevantChangeMaxPatients' THEN s.Value END),
        @SliceText = MAX(CASE WHEN s.Name = 'RelevantChangeMarkSlice' THEN s.Value END)
    FROM Ops.Setting AS s
    WHERE s.JobName = 'check_inclusion';
    IF LEN(@Text) BETWEEN 1 AND 9 AND @Text NOT LIKE N'%[^0-9]%' COLLATE Latin1_General_BIN2
        SET @Max = TRY_CAST(@Text AS int);
    IF @Max IS NULL
        SET @Errors += N'Setting RelevantChangeMaxPatients (Ops.Setting, job check_inclusion) is missing or not a whole number of patients. ';
    IF @Limit IS NOT NULL
        SET @Left = @Limit;
    ELSE IF LEN(@SliceText) BETWEEN 1 AND 4 AND @SliceText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @Left = TRY_CAST(@SliceText AS int);
    IF @Limit IS NULL AND (@Left IS NULL OR @Left < 1 OR @Left > 2000)
        SET @Errors += N'Setting RelevantChangeMarkSlice (Ops.Setting, job check_inclusion) is missing or not a whole number of patients from 1 to 2000. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    EXEC Job.off_hours_check
        @NowUtc = @Now,
        @OffHours = @OffHours OUTPUT,
        @LocalTime = @LocalTime OUTPUT,
        @Holiday = @Holiday OUTPUT;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    SET @Changes = 0;
    SET @Patients = 0;  -- @Left: the slice, from @Limit or the setting (above)

    IF @Execute = 'Y' AND @Force = 'Y'
        UPDATE c SET c.Forced = 1
        FROM PLSP.RelevantChange AS c
        WHERE c.AppliedUtc IS NULL AND c.EffectiveUtc <= @Now AND c.Forced = 0;

    -- Oldest due change first; each is counted once, then marked a slice at a time.
    WHILE @Seen < 100
    BEGIN
        SET @Table = NULL;
        SELECT TOP (1)
            @ChangeId = c.ChangeId,
            @Table = c.RelevantTable,
            @Code = c.Code,
            @CodeSystem = c.CodeSystem,
            @Count = c.Patients,
            @NextPatientId = c.NextPatientId,
            @Forced = CASE WHEN c.Forced = 1 OR @Force = 'Y' THEN 1 ELSE 0 END
        FROM PLSP.RelevantChange AS c
        WHERE c.AppliedUtc IS NULL AND c.EffectiveUtc <= @Now AND c.ChangeId > @ChangeId
        ORDER BY c.ChangeId;
        IF @Table IS NULL
            BREAK;
        SET @Seen += 1;

        IF @Count IS NULL
        BEGIN
            SELECT @Count = COUNT(*)
            FROM (
                SELECT d.PatientId FROM PLSP.Diagnose AS d
                WHERE @Table = 'relevantdiagnose' AND d.CodeSystem = @CodeSystem AND d.Code LIKE @Code + '%'
                UNION
                SELECT m.PatientId FROM PLSP.Medicin AS m
                WHERE @Table = 'relevantmedicininklusion' AND m.AtcCode LIKE @Code + '%'
                UNION
                SELECT v.PatientId FROM PLSP.Patientvaerdier AS v
                WHERE @Table = 'relevantvaerdiinklusion' AND v.Code = @Code AND v.ConversionStatus = 1
                UNION
                SELECT e.PatientId FROM PLSP.Egenskaber AS e
                WHERE @Table = 'relevantegenskab' AND e.Code = @Code
                UNION
                SELECT y.PatientId FROM PLSP.Ydelser AS y
                WHERE @Table = 'relevantydelseaarskontrol' AND y.ServiceCode = @Code
                UNION
                SELECT p.PatientId FROM PLSP.Patient AS p
                WHERE @Table = 'relevantforloeb'
            ) AS t
            -- A fresh plan for this change's table and prefix: the branches of the
            -- other five drop out and the prefix seeks its index (once a slice).
            OPTION (RECOMPILE);
            IF @Execute = 'Y'
                UPDATE c SET c.Patients = @Count FROM PLSP.RelevantChange AS c WHERE c.ChangeId = @ChangeId;
        END;

        IF @Count > @Max AND @OffHours = 0 AND @Forced = 0
            CONTINUE;  -- waits for the off-hours window
        IF @Left = 0
            BREAK;

        DELETE FROM @Ids;
        INSERT INTO @Ids (PatientId)
        SELECT TOP (@Left) t.PatientId
        FROM (
            SELECT d.PatientId FROM PLSP.Diagnose AS d
            WHERE @Table = 'relevantdiagnose' AND d.CodeSystem = @CodeSystem AND d.Code LIKE @Code + '%'
            UNION
            SELECT m.PatientId FROM PLSP.Medicin AS m
            WHERE @Table = 'relevantmedicininklusion' AND m.AtcCode LIKE @Code + '%'
            UNION
            SELECT v.PatientId FROM PLSP.Patientvaerdier AS v
            WHERE @Table = 'relevantvaerdiinklusion' AND v.Code = @Code AND v.ConversionStatus = 1
            UNION
            SELECT e.PatientId FROM PLSP.Egenskaber AS e
            WHERE @Table = 'relevantegenskab' AND e.Code = @Code
            UNION
            SELECT y.PatientId FROM PLSP.Ydelser AS y
            WHERE @Table = 'relevantydelseaarskontrol' AND y.ServiceCode = @Code
            UNION
            SELECT p.PatientId FROM PLSP.Patient AS p
            WHERE @Table = 'relevantforloeb'
        ) AS t
        WHERE t.PatientId > COALESCE(@NextPatientId, 0)
        ORDER BY t.PatientId
        OPTION (RECOMPILE);  -- as the count above
        SELECT @Slice = COUNT(*), @SliceLast = MAX(i.PatientId) FROM @Ids AS i;
        SET @Patients += @Slice;

        IF @Execute = 'Y'
        BEGIN
            BEGIN TRY
                BEGIN TRANSACTION;

                UPDATE p SET p.DueUtc = @Clock
                FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK, FORCESEEK (PK_PatientInkluderetPending (PatientId)))
                INNER JOIN @Ids AS i ON p.PatientId = i.PatientId
                WHERE p.DueUtc > @Clock;

                INSERT INTO PLSP.PatientInkluderetPending (PatientId, QueuedUtc, DueUtc)
                SELECT i.PatientId, @Clock, @Clock
                FROM @Ids AS i
                WHERE NOT EXISTS (
                    SELECT 1 FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK, FORCESEEK (PK_PatientInkluderetPending (PatientId)))
                    WHERE p.PatientId = i.PatientId
                );

                UPDATE c
                SET
                    c.NextPatientId = COALESCE(@SliceLast, c.NextPatientId),
                    c.AppliedUtc = CASE WHEN @Slice < @Left THEN @Clock END,
                    c.Forced = @Forced
                FROM PLSP.RelevantChange AS c
                WHERE c.ChangeId = @ChangeId;

                COMMIT TRANSACTION;
            END TRY
            BEGIN CATCH
                IF @@TRANCOUNT > 0
                    ROLLBACK TRANSACTION;
                THROW;
            END CATCH;
        END;

        IF @Slice < @Left
            SET @Changes += 1;
        SET @Left -= @Slice;
    END;

    SELECT @Waiting = COUNT(*)
    FROM PLSP.RelevantChange AS c
    WHERE
        c.AppliedUtc IS NULL AND c.EffectiveUtc <= @Now AND c.Patients > @Max
        AND @OffHours = 0 AND c.Forced = 0 AND @Force = 'N';
END;
