-- Upload.upload_checkpoint, version 1.
-- The per-LPS sync checkpoint: what the database already holds from the
-- clinic @SorCode. @SyncToken names its last applied upload ('u' and the
-- UploadId; NULL when it has none), with the time it finished, the uploads
-- applied and the rows stored (inserted + updated). An LPS that keeps the
-- token can send only what changed after it (a resync "since checkpoint")
-- instead of years of unchanged rows; an unchanged full resync stays a cheap
-- no-op either way (content hashes, Upload.upload_data).
-- Reads only; ownership chaining reaches PLSP.Upload for flp_lps.
CREATE OR ALTER PROCEDURE Upload.upload_checkpoint
    @SorCode varchar(20),
    @SyncToken varchar(30) = NULL OUTPUT,
    @LastUploadUtc datetime2(3) = NULL OUTPUT,
    @Uploads bigint = NULL OUTPUT,
    @RowsStored bigint = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @LastId bigint;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @SorCode IS NULL OR @SorCode = '' OR @SorCode COLLATE Latin1_General_BIN2 LIKE '%[^0-9]%'
        SET @Errors += N'The value for the parameter @SorCode is not supported: give the clinic''s SOR code (digits). ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work (reads only): the clinic's applied uploads (IX_Upload_Sor)
    ----------------------------------------------------------------------------
    SELECT
        @LastId = MAX(u.UploadId),
        @LastUploadUtc = MAX(u.FinishedUtc),
        @Uploads = COUNT_BIG(*),
        @RowsStored = COALESCE(SUM(CAST(u.RowsInserted AS bigint) + u.RowsUpdated), 0)
    FROM PLSP.Upload AS u
    WHERE u.SorCode = @SorCode AND u.Status = 'done';
    SET @SyncToken = CASE WHEN @LastId IS NULL THEN NULL ELSE CONCAT('u', @LastId) END;
END;
