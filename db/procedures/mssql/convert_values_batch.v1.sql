-- Job.convert_values_batch, version 1.
-- One batch of ConvertPatientValues (Job.convert_values runs it through
-- Job.run_batched): converts up to @BatchSize new values (status 0) in
-- PatientvaerdiId order from @Position, set-based, through the shared
-- conversion Job.convert_values_rows (docs/engine.md has the rules and the
-- reason codes). @Position is the last PatientvaerdiId handled (NULL at the
-- start); done when fewer than @BatchSize rows were left.
-- @Execute = 'N' counts what the batch would do and writes nothing.
--
-- Differences from the PostgreSQL twin, one line each:
--   * None in behaviour; Job.convert_values_rows skips locked rows with READPAST and UPDLOCK, the twin's with SKIP LOCKED.
CREATE OR ALTER PROCEDURE Job.convert_values_batch
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

    ----------------------------------------------------------------------------
    -- Check requirements, check parameters, raise collected errors: in
    -- Job.convert_values_rows, which names each parameter it refuses.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    EXEC Job.convert_values_rows
        @Mode = 'N',
        @BatchSize = @BatchSize,
        @Execute = @Execute,
        @MaxAttempts = NULL,
        @Position = @Position OUTPUT,
        @Rows = @Rows OUTPUT,
        @Done = @Done OUTPUT,
        @Note = @Note OUTPUT;
END;
