-- Job.convert_invalid_values_batch, version 1.
-- One batch of ConvertInvalidPatientValues (Job.convert_invalid_values runs it
-- through Job.run_batched): retries up to @BatchSize invalid values (status 2)
-- in PatientvaerdiId order from @Position under the rules of now (a new unit
-- mapping, a wider range), set-based, through Job.convert_values_rows. A value
-- still invalid when its attempts reach the job's MaxAttempts setting is given
-- up: status 3, rejected, never retried again (its reason code stays).
-- @Position is the last PatientvaerdiId handled (NULL at the start).
-- @Execute = 'N' counts what the batch would do and writes nothing.
--
-- Differences from the PostgreSQL twin, one line each:
--   * None in behaviour; Job.convert_values_rows skips locked rows with READPAST and UPDLOCK, the twin's with SKIP LOCKED.
CREATE OR ALTER PROCEDURE Job.convert_invalid_values_batch
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

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Text nvarchar(400);
    DECLARE @MaxAttempts int;

    ----------------------------------------------------------------------------
    -- Check requirements: in Job.convert_values_rows (no open transaction).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters (the batch's own are checked by Job.convert_values_rows)
    ----------------------------------------------------------------------------
    SELECT TOP (1) @Text = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName IN ('convert_invalid_values', '*') AND s.Name = 'MaxAttempts'
    ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END;
    IF LEN(@Text) BETWEEN 1 AND 4 AND @Text NOT LIKE N'%[^0-9]%' COLLATE Latin1_General_BIN2
        SET @MaxAttempts = TRY_CAST(@Text AS int);
    IF @MaxAttempts IS NULL OR @MaxAttempts < 1 OR @MaxAttempts > 1000
        SET @Errors += N'Setting MaxAttempts (Ops.Setting, job convert_invalid_values) is missing or not a whole number of attempts from 1 to 1000. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    EXEC Job.convert_values_rows
        @Mode = 'I',
        @BatchSize = @BatchSize,
        @Execute = @Execute,
        @MaxAttempts = @MaxAttempts,
        @Position = @Position OUTPUT,
        @Rows = @Rows OUTPUT,
        @Done = @Done OUTPUT,
        @Note = @Note OUTPUT;
END;
