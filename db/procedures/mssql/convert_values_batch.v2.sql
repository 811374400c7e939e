-- Job.convert_values_batch, version 2.
-- One batch of ConvertPatientValues (Job.convert_values runs it through
-- Job.run_batched), converting by insert (issue 9, migration 0023;
-- docs/engine.md): up to @BatchSize new values move out of
-- PLSP.Patientvaerdier_Pending, oldest first, into PLSP.Patientvaerdier
-- already converted or invalid (Job.convert_values_move). When fewer were
-- pending, the rest of the batch converts values of status 0 still in
-- PLSP.Patientvaerdier in place, as version 1 did (Job.convert_values_rows:
-- rows written before migration 0023, or by a writer of the old shape), in
-- PatientvaerdiId order from @Position, the last PatientvaerdiId handled
-- in place (NULL at the start; the pending rows need no position: they leave
-- their table). Done when the batch found fewer rows than @BatchSize.
-- @Execute = 'N' counts what the batch would do and writes nothing.
-- Each of the two steps is its own short transaction (at most @BatchSize
-- rows together).
--
-- Differences from the PostgreSQL twin: none in behaviour (READPAST in the two
-- procedures called where PostgreSQL skips locked rows).
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

    DECLARE @Moved int;
    DECLARE @InPlace int;
    DECLARE @InPlaceNote nvarchar(400);
    DECLARE @InPlaceDone bit;

    ----------------------------------------------------------------------------
    -- Check requirements, check parameters, raise collected errors: in
    -- Job.convert_values_move and Job.convert_values_rows, which name each
    -- parameter they refuse.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Do the work: the pending values, then (when the batch has room) the
    -- values of status 0 in place
    ----------------------------------------------------------------------------
    EXEC Job.convert_values_move
        @BatchSize = @BatchSize,
        @Execute = @Execute,
        @Rows = @Moved OUTPUT,
        @Note = @Note OUTPUT;
    SET @Rows = @Moved;

    IF @Moved < @BatchSize
    BEGIN
        DECLARE @Room int = @BatchSize - @Moved;
        EXEC Job.convert_values_rows
            @Mode = 'N',
            @BatchSize = @Room,
            @Execute = @Execute,
            @MaxAttempts = NULL,
            @Position = @Position OUTPUT,
            @Rows = @InPlace OUTPUT,
            @Done = @InPlaceDone OUTPUT,
            @Note = @InPlaceNote OUTPUT;
        SET @Rows += @InPlace;
        IF @InPlace > 0
            SET @Note = LEFT(CONCAT(@Note, N'; in place: ', @InPlaceNote), 400);
    END;

    SET @Done = CASE WHEN @Rows < @BatchSize THEN 1 ELSE 0 END;
END;
